//! The write-ahead journal: the records one operation changes, in several
//! trees, made durable by one `write` to an append-only file and copied
//! into their sled trees later, off the latency path.
//!
//! # Why a file and not a sled tree
//! Filling a paper order rewrites about a dozen records (the order, the
//! fill, balances, holds, resting orders, reservations) and the bot that
//! owned it rewrites its own; all of it is on the bot's tick-to-order path.
//! Grouping them into one journal record already made that one write; the
//! write went into a sled tree until measured: a sled insert takes 2–3 µs
//! at the median but has a tail (p99 ~55 µs, p99.9 ~170 µs, 0.3 % over
//! 100 µs on its own, more with the daemon's other threads) from its page
//! consolidations and log-buffer rotation, and those inserts were every
//! slow tick. An append to a file is one `write` system call into the page
//! cache (p99 ~13 µs, 0.015 % over 100 µs in the same test).
//!
//! # Durability
//! - A group is one frame: `[length u32][crc32 u32][writes]`, written with
//!   one `write`. A process killed at any instant (`kill -9`) leaves every
//!   completed `write` in the page cache, so every committed group survives.
//! - After a power loss a file may keep any subset of unsynced pages;
//!   replay stops at the first frame that is short or fails its checksum,
//!   so what survives is always a prefix of the groups, in order. Sims and
//!   bots write through this one journal, so a bot's record never survives
//!   without the exchange record written before it, nor the other way.
//!   [`Journal::sync`] (from [`Store::flush`](super::Store::flush)) makes
//!   everything committed durable against power loss too.
//! - Settling ([`Journal::settle`]) copies the newest value of every key
//!   into its tree. The file is not needed for those writes once sled has
//!   flushed them, so a checkpoint (when a segment passes
//!   [`SEGMENT_BYTES`]) settles, starts a new segment file, and a
//!   background thread flushes sled and then deletes the old segments. A
//!   crash anywhere in between replays the old segments again: replaying
//!   writes in order is idempotent.
//! - At open, the segments are replayed into the trees in order, sled is
//!   flushed and the segments are deleted, before anything reads a tree.
//!
//! # Reads
//! Reads through [`Records::get`](super::Records::get) see the newest value
//! (the overlay of written-but-unsettled keys first); scans settle first.
//!
//! # One writer
//! A group is everything written between two commits, so every journaled
//! tree is written from one task at a time: the bot runtime, which owns the
//! exchanges. Other threads only read.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    hash::BuildHasherDefault,
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use virc_core::ids::IdHasher;

use super::StoreError;

/// Settle on our own after this many unsettled groups, so memory stays
/// bounded when the daemon is never idle.
const SETTLE_AFTER: u64 = 512;

/// A segment past this size is checkpointed (see the module docs): big
/// enough that sled's flush runs every few thousand groups, small enough
/// that replay after a crash takes milliseconds.
pub const SEGMENT_BYTES: u64 = 4 << 20;

const PUT: u8 = 1;
const REMOVE: u8 = 0;
/// Frame header: length and checksum of the writes, big-endian.
const HEADER: usize = 8;

/// Unsettled writes of one tree, by key (keys are ours: a cheap hash).
/// Plain vectors: turning them into sled's `IVec` copies them, which
/// settling does off the tick path.
type Overlay = HashMap<Vec<u8>, Option<Vec<u8>>, BuildHasherDefault<IdHasher>>;

/// A write to a key that is not settled yet.
pub(super) enum Pending {
    /// The key holds these bytes.
    Put(Vec<u8>),
    /// The key was removed.
    Removed,
}

/// The store's write-ahead journal (see the module docs).
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
    /// A checkpoint's flush is running in the background.
    checkpointing: Arc<AtomicBool>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

/// A tree written through the journal.
struct Member {
    name: &'static str,
    tree: sled::Tree,
    overlay: Overlay,
}

struct Inner {
    db: sled::Db,
    dir: PathBuf,
    members: Vec<Member>,
    /// The segment being appended to, its number and length.
    file: File,
    segment: u64,
    len: u64,
    /// The group being built: a frame header, then its writes.
    group: Vec<u8>,
    /// Groups committed and not settled.
    unsettled: u64,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.wal"))
}

/// The segment files in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, std::io::Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let n = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if let Some(n) = n {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out)
}

impl Journal {
    /// Opens the journal in `dir`, first replaying into `db` whatever an
    /// earlier process committed (see the module docs).
    pub(super) fn open(db: sled::Db, dir: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let old = segments(dir).map_err(io)?;
        let mut groups = 0_u64;
        for (i, (_, path)) in old.iter().enumerate() {
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io)?;
            let (n, rest) = replay(&db, &bytes)?;
            groups += n;
            if rest > 0 {
                // A torn tail (power loss): what follows it, here or in a
                // later segment, is not a prefix of the groups any more.
                tracing::warn!(
                    segment = %path.display(),
                    dropped_bytes = rest,
                    later_segments = old.len() - i - 1,
                    "Journal ends in an incomplete write; replayed the groups before it"
                );
                break;
            }
        }
        let next = old.last().map_or(0, |(n, _)| n + 1);
        if !old.is_empty() {
            db.flush()?;
            for (_, path) in &old {
                std::fs::remove_file(path).map_err(io)?;
            }
            if groups > 0 {
                tracing::info!(groups, "Replayed writes committed before the last stop");
            }
        }
        let file = open_segment(dir, next).map_err(io)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                db,
                dir: dir.to_owned(),
                members: Vec::new(),
                file,
                segment: next,
                len: 0,
                group: vec![0; HEADER],
                unsettled: 0,
            })),
            checkpointing: Arc::new(AtomicBool::new(false)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way later reads would misread: every update is one insert.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a tree written through the journal; returns its handle.
    pub(super) fn member(&self, name: &'static str, tree: sled::Tree) -> u16 {
        let mut j = self.lock();
        if let Some(i) = j.members.iter().position(|m| m.name == name) {
            return u16::try_from(i).unwrap_or(u16::MAX);
        }
        j.members.push(Member {
            name,
            tree,
            overlay: Overlay::default(),
        });
        u16::try_from(j.members.len() - 1).unwrap_or(u16::MAX)
    }

    /// Adds a write of `value` (or a removal, for `None`) to the current group.
    pub(super) fn write(&self, member: u16, key: &[u8], value: Option<Vec<u8>>) {
        let mut j = self.lock();
        let j = &mut *j;
        let Some(m) = j.members.get_mut(usize::from(member)) else {
            return;
        };
        let g = &mut j.group;
        g.push(if value.is_some() { PUT } else { REMOVE });
        // Tree names are ours and short ("sim.paper.orders").
        let name = &m.name.as_bytes()[..m.name.len().min(255)];
        g.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        g.extend_from_slice(name);
        push_bytes(g, key);
        if let Some(v) = &value {
            push_bytes(g, v);
        }
        m.overlay.insert(key.to_vec(), value);
    }

    /// The newest write to `key` not yet settled; `None` if the tree
    /// itself must be asked.
    pub(super) fn read(&self, member: u16, key: &[u8]) -> Option<Pending> {
        self.lock()
            .members
            .get(usize::from(member))
            .and_then(|m| m.overlay.get(key))
            .map(|v| v.clone().map_or(Pending::Removed, Pending::Put))
    }

    /// Makes the current group one frame in the journal file: after a
    /// crash all of its writes are there or none.
    pub fn commit(&self) -> Result<(), StoreError> {
        let mut j = self.lock();
        j.commit()?;
        if j.unsettled >= SETTLE_AFTER {
            j.settle()?;
        }
        if j.len >= SEGMENT_BYTES && !self.checkpointing.swap(true, Ordering::AcqRel) {
            self.checkpoint(&mut j)?;
        }
        Ok(())
    }

    /// Commits, then copies every unsettled write into its tree. Call
    /// between operations, when idle.
    pub fn settle(&self) -> Result<(), StoreError> {
        let mut j = self.lock();
        j.commit()?;
        j.settle()
    }

    /// Groups committed and not settled.
    pub fn unsettled(&self) -> u64 {
        self.lock().unsettled
    }

    /// Commits and makes the journal durable against power loss
    /// (`fdatasync`), for [`Store::flush`](super::Store::flush).
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut j = self.lock();
        j.commit()?;
        let dir = j.dir.clone();
        j.file
            .sync_data()
            .map_err(|source| StoreError::Io { dir, source })
    }

    /// Settles, starts a new segment and hands the old ones to a thread
    /// that deletes them once sled has flushed what they held.
    fn checkpoint(&self, j: &mut Inner) -> Result<(), StoreError> {
        let done = self.checkpointing.clone();
        let result = (|| {
            j.settle()?;
            let next = j.segment + 1;
            let file = open_segment(&j.dir, next).map_err(|source| StoreError::Io {
                dir: j.dir.clone(),
                source,
            })?;
            let old = std::mem::replace(&mut j.file, file);
            drop(old);
            let last = j.segment;
            j.segment = next;
            j.len = 0;
            let (db, dir) = (j.db.clone(), j.dir.clone());
            std::thread::Builder::new()
                .name("virc-checkpoint".into())
                .spawn(move || {
                    let r = db.flush().map_err(StoreError::from).and_then(|_| {
                        for n in segments(&dir)
                            .map_err(|source| StoreError::Io {
                                dir: dir.clone(),
                                source,
                            })?
                            .into_iter()
                            .filter(|(n, _)| *n <= last)
                        {
                            std::fs::remove_file(&n.1).map_err(|source| StoreError::Io {
                                dir: dir.clone(),
                                source,
                            })?;
                        }
                        Ok(())
                    });
                    if let Err(e) = r {
                        // The segments stay and are replayed at the next open.
                        tracing::error!(error = %e, "Journal checkpoint failed; it is retried at the next one");
                    }
                    done.store(false, Ordering::Release);
                })
                .map_err(|source| StoreError::Io {
                    dir: j.dir.clone(),
                    source,
                })?;
            Ok(())
        })();
        if result.is_err() {
            self.checkpointing.store(false, Ordering::Release);
        }
        result
    }
}

fn open_segment(dir: &Path, n: u64) -> Result<File, std::io::Error> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, n))
}

impl Inner {
    fn commit(&mut self) -> Result<(), StoreError> {
        if self.group.len() == HEADER {
            return Ok(());
        }
        let body = &self.group[HEADER..];
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(body);
        self.group[..4].copy_from_slice(&len.to_be_bytes());
        self.group[4..HEADER].copy_from_slice(&crc.to_be_bytes());
        if let Err(source) = self.file.write_all(&self.group) {
            // A partial frame would end the journal at replay and hide
            // every later group: cut it off, and keep the group for the
            // next commit.
            let _ = self.file.set_len(self.len);
            return Err(StoreError::Io {
                dir: self.dir.clone(),
                source,
            });
        }
        self.len += self.group.len() as u64;
        self.group.truncate(HEADER);
        self.unsettled += 1;
        Ok(())
    }

    fn settle(&mut self) -> Result<(), StoreError> {
        // One write per key: a sled batch would take a lock that stalls
        // every other writer, and atomicity is the journal's job here.
        for m in &mut self.members {
            for (k, v) in m.overlay.drain() {
                match v {
                    Some(v) => m.tree.insert(k, v)?,
                    None => m.tree.remove(k)?,
                };
            }
        }
        self.unsettled = 0;
        Ok(())
    }
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Records are a few KB at most; u32 lengths are ample.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Applies the complete frames of a segment to their trees; returns how
/// many it applied and how many bytes at the end were not a complete,
/// intact frame.
fn replay(db: &sled::Db, mut bytes: &[u8]) -> Result<(u64, usize), StoreError> {
    let mut n = 0;
    while let Some((head, rest)) = bytes.split_first_chunk::<HEADER>() {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let Some(body) = rest.get(..usize::try_from(len).unwrap_or(usize::MAX)) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        // Checked first, applied after: a frame is all of its group or none.
        let ops = Ops { rest: body }.collect::<Result<Vec<_>, _>>()?;
        for (name, key, value) in ops {
            let tree = db.open_tree(name)?;
            match value {
                Some(v) => tree.insert(key, v)?,
                None => tree.remove(key)?,
            };
        }
        bytes = &rest[body.len()..];
        n += 1;
    }
    Ok((n, bytes.len()))
}

/// The writes of one frame, decoded.
struct Ops<'a> {
    rest: &'a [u8],
}

impl<'a> Ops<'a> {
    fn corrupt(&mut self, what: &str) -> StoreError {
        self.rest = &[];
        StoreError::Corrupt {
            tree: "journal",
            detail: format!("a journal frame with a valid checksum is cut short in {what}"),
        }
    }

    fn chunk(&mut self, n: usize, what: &str) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(self.corrupt(what));
        }
        let (b, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(b)
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], StoreError> {
        let len = self.chunk(4, what)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        self.chunk(usize::try_from(len).unwrap_or(usize::MAX), what)
    }
}

impl<'a> Iterator for Ops<'a> {
    type Item = Result<(&'a [u8], &'a [u8], Option<&'a [u8]>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        Some((|| {
            let head = self.chunk(2, "a write's header")?;
            let (kind, name_len) = (head[0], usize::from(head[1]));
            let name = self.chunk(name_len, "a tree name")?;
            let key = self.bytes("a key")?;
            let value = match kind {
                PUT => Some(self.bytes("a value")?),
                REMOVE => None,
                k => {
                    self.rest = &[];
                    return Err(StoreError::Corrupt {
                        tree: "journal",
                        detail: format!("journal write of unknown kind {k}"),
                    });
                }
            };
            Ok((name, key, value))
        })())
    }
}

/// Replays and removes the journal trees of schema 1 and 2 (one sled tree
/// `<prefix>.journal` per exchange, writes naming their tree by its place
/// in that exchange's list), so that a store left by `kill -9` under an
/// older build loses nothing. Their layouts are fixed by those builds.
pub(super) fn migrate_tree_journals(db: &sled::Db) -> Result<(), StoreError> {
    for name in db.tree_names() {
        let Ok(name) = std::str::from_utf8(&name).map(str::to_owned) else {
            continue;
        };
        let Some(prefix) = name.strip_suffix(".journal") else {
            continue;
        };
        let members: Vec<String> = if prefix.starts_with("sim.") {
            ["book", "orders", "index", "fills"]
                .iter()
                .map(|t| format!("{prefix}.{t}"))
                .collect()
        } else if prefix.starts_with("coinbase.") {
            vec![prefix.to_owned()]
        } else {
            continue;
        };
        let log = db.open_tree(&name)?;
        let mut groups = 0_u64;
        for kv in &log {
            let (_, v) = kv?;
            let mut ops = LegacyOps { rest: &v };
            let ops = (&mut ops).collect::<Result<Vec<_>, _>>()?;
            for (i, key, value) in ops {
                let tree = members
                    .get(usize::from(i))
                    .ok_or_else(|| StoreError::Corrupt {
                        tree: "journal",
                        detail: format!("{name} names tree {i}, of {}", members.len()),
                    })?;
                let tree = db.open_tree(tree)?;
                match value {
                    Some(v) => tree.insert(key, v)?,
                    None => tree.remove(key)?,
                };
            }
            groups += 1;
        }
        db.flush()?;
        db.drop_tree(name.as_bytes())?;
        if groups > 0 {
            tracing::info!(journal = name, groups, "Replayed an older build's journal");
        }
    }
    Ok(())
}

/// A schema 1/2 journal record: `[tree u8][kind u8][key][value]` writes.
struct LegacyOps<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for &mut LegacyOps<'a> {
    type Item = Result<(u8, &'a [u8], Option<&'a [u8]>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut o = Ops { rest: self.rest };
        let r = (|| {
            let head = o.chunk(2, "a write's header")?;
            let (tree, kind) = (head[0], head[1]);
            let key = o.bytes("a key")?;
            let value = match kind {
                PUT => Some(o.bytes("a value")?),
                _ => None,
            };
            Ok((tree, key, value))
        })();
        self.rest = o.rest;
        if r.is_err() {
            self.rest = &[];
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::store::{Records, Store};

    fn open(dir: &Path) -> (Store, [Records; 2]) {
        let store = Store::open(dir).unwrap();
        let r = [
            store.journaled("t.a").unwrap(),
            store.journaled("t.b").unwrap(),
        ];
        (store, r)
    }

    #[test]
    fn reads_see_unsettled_writes_and_settle_moves_them_into_the_trees() {
        let dir = tempfile::tempdir().unwrap();
        let (store, r) = open(dir.path());
        let j = store.journal();
        r[0].put(b"k1", &1u32).unwrap();
        r[1].put(b"k2", &2u32).unwrap();
        r[0].put(b"k1", &3u32).unwrap();
        assert_eq!(r[0].get::<u32>(b"k1").unwrap(), Some(3));
        j.commit().unwrap();
        r[1].remove(b"k2").unwrap();
        assert_eq!(r[1].get::<u32>(b"k2").unwrap(), None);
        j.commit().unwrap();
        assert_eq!(j.unsettled(), 2);
        let raw = store.tree("t.a").unwrap();
        assert!(raw.get(b"k1").unwrap().is_none(), "not settled yet");
        j.settle().unwrap();
        assert_eq!(j.unsettled(), 0);
        // The record as `put` encoded it: the binary marker, then 3.
        assert_eq!(
            raw.get(b"k1").unwrap().as_deref(),
            Some([super::super::BINARY, 3].as_slice())
        );
        assert!(store.tree("t.b").unwrap().get(b"k2").unwrap().is_none());
    }

    #[test]
    fn scans_settle_first() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, r) = open(dir.path());
        r[0].put(b"a", &1u32).unwrap();
        r[0].put(b"b", &2u32).unwrap();
        r[0].remove(b"a").unwrap();
        let all: Vec<u32> = r[0]
            .all::<u32>()
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(all, vec![2]);
    }

    #[test]
    fn committed_groups_survive_a_crash_before_settling_and_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, r) = open(dir.path());
            let j = store.journal();
            r[0].put(b"k", &1u32).unwrap();
            r[1].put(b"gone", &9u32).unwrap();
            j.commit().unwrap();
            // Settled into sled's memory, never flushed by sled: only the
            // journal has it after the crash.
            j.settle().unwrap();
            r[0].put(b"k", &2u32).unwrap();
            r[1].remove(b"gone").unwrap();
            j.commit().unwrap();
            // Not committed: lost with the crash, as a whole.
            r[0].put(b"k", &3u32).unwrap();
            r[1].put(b"half", &4u32).unwrap();
            // Dropped without settling, as after kill -9 (sled flushes
            // what it has when dropped; the unsettled groups it never had).
            drop(store);
        }
        let (store, r) = open(dir.path());
        assert_eq!(store.journal().unsettled(), 0);
        assert_eq!(r[0].get::<u32>(b"k").unwrap(), Some(2));
        assert_eq!(r[1].get::<u32>(b"gone").unwrap(), None);
        assert_eq!(r[1].get::<u32>(b"half").unwrap(), None);
        // Replayed segments are gone once sled has them.
        assert_eq!(segments(&dir.path().join("journal")).unwrap().len(), 1);
    }

    #[test]
    fn a_torn_last_frame_is_dropped_and_the_groups_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, r) = open(dir.path());
            r[0].put(b"kept", &1u32).unwrap();
            store.journal().commit().unwrap();
            r[0].put(b"torn", &2u32).unwrap();
            store.journal().commit().unwrap();
            drop(store);
        }
        let seg = segments(&dir.path().join("journal")).unwrap().remove(0).1;
        let len = std::fs::metadata(&seg).unwrap().len();
        // As after a power loss in the middle of the second frame.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (_store, r) = open(dir.path());
        assert_eq!(r[0].get::<u32>(b"kept").unwrap(), Some(1));
        assert_eq!(r[0].get::<u32>(b"torn").unwrap(), None);
    }

    #[test]
    fn a_damaged_frame_ends_the_replay_there() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, r) = open(dir.path());
            for i in 0..3u32 {
                r[0].put(&i.to_be_bytes(), &i).unwrap();
                store.journal().commit().unwrap();
            }
            drop(store);
        }
        let seg = segments(&dir.path().join("journal")).unwrap().remove(0).1;
        let mut bytes = std::fs::read(&seg).unwrap();
        let first =
            HEADER + usize::try_from(u32::from_be_bytes(bytes[..4].try_into().unwrap())).unwrap();
        // One bit of the second frame's body.
        bytes[first + HEADER + 2] ^= 1;
        std::fs::write(&seg, &bytes).unwrap();
        let (_store, r) = open(dir.path());
        assert_eq!(r[0].get::<u32>(&0u32.to_be_bytes()).unwrap(), Some(0));
        assert_eq!(r[0].get::<u32>(&1u32.to_be_bytes()).unwrap(), None);
        assert_eq!(r[0].get::<u32>(&2u32.to_be_bytes()).unwrap(), None);
    }

    #[test]
    fn settles_on_its_own_when_the_daemon_is_never_idle() {
        let dir = tempfile::tempdir().unwrap();
        let (store, r) = open(dir.path());
        for i in 0..SETTLE_AFTER {
            r[0].put(&i.to_be_bytes(), &i).unwrap();
            store.journal().commit().unwrap();
        }
        assert_eq!(store.journal().unsettled(), 0);
    }

    #[test]
    fn a_full_segment_is_checkpointed_and_deleted_once_sled_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("journal");
        {
            let (store, r) = open(dir.path());
            let big = vec![7u8; 64 << 10];
            let n = SEGMENT_BYTES / (64 << 10) + 2;
            for i in 0..n {
                r[0].put(&i.to_be_bytes(), &big).unwrap();
                store.journal().commit().unwrap();
            }
            // The checkpoint's thread deletes the full segment after sled's flush.
            let t = std::time::Instant::now();
            while segments(&wal).unwrap().len() > 1 {
                assert!(t.elapsed().as_secs() < 30, "old segment never deleted");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(segments(&wal).unwrap()[0].0 >= 1);
            drop(store);
        }
        let (_store, r) = open(dir.path());
        let n = SEGMENT_BYTES / (64 << 10) + 2;
        for i in 0..n {
            assert_eq!(
                r[0].get::<Vec<u8>>(&i.to_be_bytes())
                    .unwrap()
                    .unwrap()
                    .len(),
                64 << 10
            );
        }
    }

    #[test]
    fn an_older_builds_tree_journal_is_replayed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let log = store.tree("sim.paper.journal").unwrap();
            // Tree 1 (orders): put "k" = 5 as JSON; tree 0 (book): remove "x".
            let mut rec = vec![1, PUT];
            push_bytes(&mut rec, b"k");
            push_bytes(&mut rec, b"5");
            rec.extend_from_slice(&[0, REMOVE]);
            push_bytes(&mut rec, b"x");
            log.insert(0u64.to_be_bytes(), rec).unwrap();
            store
                .tree("sim.paper.book")
                .unwrap()
                .insert(b"x", b"1")
                .unwrap();
            store.flush_now();
        }
        let store = Store::open(dir.path()).unwrap();
        let orders = store.journaled("sim.paper.orders").unwrap();
        assert_eq!(orders.get::<u32>(b"k").unwrap(), Some(5));
        assert!(
            store
                .tree("sim.paper.book")
                .unwrap()
                .get(b"x")
                .unwrap()
                .is_none()
        );
        assert!(
            !store
                .db()
                .tree_names()
                .iter()
                .any(|n| n.as_ref() == b"sim.paper.journal")
        );
    }
}
