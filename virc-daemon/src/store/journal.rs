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
//! - Settling copies the newest value of every key into its tree, on the
//!   journal's own thread ("virc-settler"), every [`SETTLE_GROUPS`] groups:
//!   the committing thread only hands the overlay over (a swap), so the
//!   sled inserts stay off the tick path, and a key rewritten at every
//!   tick reaches its tree once per batch. Handing over happens right
//!   after a commit, so a group is never half in a tree. The file is not
//!   needed for those writes once sled has flushed them: when a segment
//!   passes [`SEGMENT_BYTES`] the hand-over also starts a new segment, and
//!   the settler flushes sled and deletes the old ones after copying. A
//!   crash anywhere in between replays the old segments again: replaying
//!   writes in order is idempotent.
//! - The next segment's file is created ahead, empty (at open, then by the
//!   settler after each checkpoint), so that starting a segment on the
//!   committing thread is a swap of handles and not a file creation (which
//!   measured ~100 µs, the slowest tick of every run). An empty segment
//!   replays as nothing.
//! - At open, the segments are replayed into the trees in order, sled is
//!   flushed and the segments are deleted, before anything reads a tree.
//!
//! # Reads
//! Reads through [`Records::get`](super::Records::get) see the newest value
//! (the overlay of unsettled keys first, then what the settler is copying,
//! then the tree); scans settle first ([`Journal::settle`]).
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
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, MutexGuard, mpsc},
};

use virc_core::ids::IdHasher;

use super::StoreError;

/// Hand the writes to the settler every this many groups: a key rewritten
/// at every tick (a balance, a bot's record) then reaches its tree once
/// per batch instead of once per group.
const SETTLE_GROUPS: u64 = 64;

/// Wait for a busy settler past this many unsettled groups, so that memory
/// stays bounded if it falls behind.
const SETTLE_AFTER: u64 = 4096;

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
    shared: Arc<Shared>,
    /// Wakes the settler thread; it stops when the last clone is dropped.
    settler: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

struct Shared {
    inner: Mutex<Inner>,
    /// Signalled when the settler has finished a job.
    settled: Condvar,
}

/// A tree written through the journal.
struct Member {
    name: &'static str,
    tree: sled::Tree,
    /// Committed (or being built) writes not handed to the settler.
    overlay: Overlay,
    /// Writes the settler is copying into the tree right now: reads look
    /// here after `overlay`, before the tree.
    settling: Option<Arc<Overlay>>,
}

struct Inner {
    db: sled::Db,
    dir: PathBuf,
    members: Vec<Member>,
    /// The segment being appended to, its number and length.
    file: File,
    segment: u64,
    len: u64,
    /// Segment `segment + 1`, created empty ahead of need.
    spare: Option<File>,
    /// The group being built: a frame header, then its writes.
    group: Vec<u8>,
    /// Groups committed and not handed to the settler.
    unsettled: u64,
    /// The settler has a job.
    busy: bool,
    /// The current segment's directory entry is durable.
    dir_synced: bool,
}

/// What the settler copies, and the last segment it may then delete.
struct Job {
    copies: Vec<(sled::Tree, Arc<Overlay>)>,
    retire: Option<u64>,
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
    /// earlier process committed (see the module docs), and starts its
    /// settler thread.
    pub(super) fn open(db: sled::Db, dir: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            dir: dir.to_owned(),
            source,
        };
        super::private_dir(dir)?;
        let old = segments(dir).map_err(io)?;
        let mut groups = 0_u64;
        for (i, (_, path)) in old.iter().enumerate() {
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io)?;
            let (n, rest) = replay(&db, &bytes).map_err(|e| match e {
                // Intact bytes that do not decode: a bug, not a crash. Say
                // which file, and the way out that loses only its writes.
                StoreError::Corrupt { tree, detail } => StoreError::Corrupt {
                    tree,
                    detail: format!(
                        "{detail} ({}); move that file out of {} to start without the writes it holds",
                        path.display(),
                        dir.display()
                    ),
                },
                other => other,
            })?;
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
        let spare = open_segment(dir, next + 1).map_err(io)?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                db,
                dir: dir.to_owned(),
                members: Vec::new(),
                file,
                segment: next,
                spare: Some(spare),
                len: 0,
                group: vec![0; HEADER],
                unsettled: 0,
                busy: false,
                dir_synced: false,
            }),
            settled: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("virc-settler".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    s.run(&job);
                }
            })
            .map_err(io)?;
        Ok(Self {
            shared,
            settler: tx,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
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
            settling: None,
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
        // Most keys (balances, a bot's record) are rewritten at every
        // tick: their entry is reused instead of a new key allocated.
        match m.overlay.get_mut(key) {
            Some(slot) => *slot = value,
            None => {
                m.overlay.insert(key.to_vec(), value);
            }
        }
    }

    /// The newest write to `key` not yet in its tree; `None` if the tree
    /// itself must be asked.
    pub(super) fn read(&self, member: u16, key: &[u8]) -> Option<Pending> {
        let j = self.lock();
        let m = j.members.get(usize::from(member))?;
        m.overlay
            .get(key)
            .or_else(|| m.settling.as_ref().and_then(|s| s.get(key)))
            .map(|v| v.clone().map_or(Pending::Removed, Pending::Put))
    }

    /// Makes the current group one frame in the journal file: after a
    /// crash all of its writes are there or none. Every
    /// 64 groups (`SETTLE_GROUPS`; and when a segment is full) the writes
    /// are handed to the settler thread, which copies them into the trees.
    pub fn commit(&self) -> Result<(), StoreError> {
        let mut j = self.lock();
        j.commit()?;
        if j.unsettled >= SETTLE_GROUPS || j.len >= SEGMENT_BYTES {
            if j.busy && j.unsettled >= SETTLE_AFTER {
                // The settler is behind: wait for it rather than let the
                // overlay grow without bound.
                j = self.shared.wait_idle(j);
            }
            if !j.busy {
                let job = j.hand_over()?;
                j.busy = true;
                drop(j);
                // The thread lives as long as any clone of this journal.
                let _ = self.settler.send(job);
            }
        }
        Ok(())
    }

    /// Commits, then copies every write into its tree before returning
    /// (scans, shutdown).
    pub fn settle(&self) -> Result<(), StoreError> {
        let mut j = self.lock();
        j.commit()?;
        let mut j = self.shared.wait_idle(j);
        j.settle_here()
    }

    /// Groups committed and not yet handed to the settler.
    pub fn unsettled(&self) -> u64 {
        self.lock().unsettled
    }

    /// Commits and makes the journal durable against power loss
    /// (`fdatasync`), for [`Store::flush`](super::Store::flush): waits
    /// for a running checkpoint, whose old segments hold writes sled has
    /// not flushed yet.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut j = self.lock();
        j.commit()?;
        let mut j = self.shared.wait_idle(j);
        let io = |source| StoreError::Io {
            dir: j.dir.clone(),
            source,
        };
        j.file.sync_data().map_err(io)?;
        if !j.dir_synced {
            // A new segment file survives a power loss only once its
            // directory entry is on disk too.
            File::open(&j.dir).and_then(|d| d.sync_all()).map_err(io)?;
            j.dir_synced = true;
        }
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way later reads would misread: every update is one insert.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the settler has no job.
    fn wait_idle<'a>(&self, mut j: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        while j.busy {
            j = self
                .settled
                .wait(j)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        j
    }

    /// The settler's work: copy, and for a full segment flush sled and
    /// delete the segments it held.
    fn run(&self, job: &Job) {
        let (db, dir) = {
            let j = self.lock();
            (j.db.clone(), j.dir.clone())
        };
        // A panic in sled must not leave `busy` set (every later settle
        // and sync would wait forever): it counts as a failed copy.
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for (tree, overlay) in &job.copies {
                copy(tree, overlay)?;
            }
            if let Some(last) = job.retire
                && let Err(e) = retire(&db, &dir, last)
            {
                // The segments stay and are replayed at the next open.
                tracing::error!(error = %e, "Journal checkpoint failed; it is retried at the next one");
            }
            Ok::<(), StoreError>(())
        }))
        .unwrap_or_else(|_| {
            Err(StoreError::Corrupt {
                tree: "journal",
                detail: "the settler panicked while copying".into(),
            })
        })
        .err();
        // The next segment, created here while `busy` keeps the committing
        // thread from starting one; a failure only means it is created
        // there, when needed.
        let spare = job.retire.and_then(|_| {
            let next = self.lock().segment + 1;
            open_segment(&dir, next)
                .inspect_err(|e| tracing::warn!(error = %e, "Cannot create the next journal segment ahead; it is created when needed"))
                .ok()
        });
        let mut j = self.lock();
        if spare.is_some() {
            j.spare = spare;
        }
        for m in &mut j.members {
            let Some(s) = m.settling.take() else { continue };
            if failed.is_some() {
                // Not all of it reached the tree: back into the overlay
                // (behind anything newer), to be copied again.
                for (k, v) in s.iter() {
                    m.overlay.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        if let Some(e) = failed {
            tracing::error!(error = %e, "Cannot copy the journal into the store; retried at the next settle");
        }
        j.busy = false;
        drop(j);
        self.settled.notify_all();
    }
}

/// Writes one tree's settled keys. One write per key: a sled batch would
/// take a lock that stalls every other writer, and atomicity is the
/// journal's job here.
fn copy(tree: &sled::Tree, overlay: &Overlay) -> Result<(), StoreError> {
    for (k, v) in overlay {
        match v {
            Some(v) => tree.insert(k.as_slice(), v.as_slice())?,
            None => tree.remove(k.as_slice())?,
        };
    }
    Ok(())
}

/// Flushes sled, then deletes the segments up to `last`: everything they
/// held is in the trees by now.
fn retire(db: &sled::Db, dir: &Path, last: u64) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        dir: dir.to_owned(),
        source,
    };
    db.flush()?;
    for (_, path) in segments(dir)
        .map_err(io)?
        .into_iter()
        .filter(|(n, _)| *n <= last)
    {
        std::fs::remove_file(path).map_err(io)?;
    }
    Ok(())
}

fn open_segment(dir: &Path, n: u64) -> Result<File, std::io::Error> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
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

    /// Moves every committed write into a job for the settler (called
    /// right after a commit, so no group is half in it), starting a new
    /// segment when the current one is full.
    fn hand_over(&mut self) -> Result<Job, StoreError> {
        let mut retire = None;
        if self.len >= SEGMENT_BYTES {
            let next = self.segment + 1;
            self.file = match self.spare.take() {
                Some(file) => file,
                None => open_segment(&self.dir, next).map_err(|source| StoreError::Io {
                    dir: self.dir.clone(),
                    source,
                })?,
            };
            retire = Some(self.segment);
            self.segment = next;
            self.len = 0;
            self.dir_synced = false;
        }
        let mut copies = Vec::new();
        for m in &mut self.members {
            if m.overlay.is_empty() {
                continue;
            }
            let s = Arc::new(std::mem::take(&mut m.overlay));
            m.settling = Some(s.clone());
            copies.push((m.tree.clone(), s));
        }
        self.unsettled = 0;
        Ok(Job { copies, retire })
    }

    /// Copies every write into its tree on this thread (the settler is idle).
    fn settle_here(&mut self) -> Result<(), StoreError> {
        for m in &mut self.members {
            copy(&m.tree, &m.overlay)?;
            m.overlay.clear();
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
        // Replayed segments are gone once sled has them: left are the new
        // current one (2: 0 and its spare 1 were replayed) and its spare.
        let numbers: Vec<u64> = segments(&dir.path().join("journal"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(numbers, [2, 3]);
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
    fn an_intact_frame_that_does_not_decode_names_its_file_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let seg = segments(&dir.path().join("journal")).unwrap().remove(0).1;
        // A put whose tree name runs past the end, with a valid checksum.
        let body = [PUT, 200, b't'];
        let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        frame.extend_from_slice(&body);
        std::fs::write(&seg, &frame).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("cut short in a tree name")
                && err.contains(&seg.display().to_string())
                && err.contains("move that file out of"),
            "{err}"
        );
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
    fn the_settler_copies_every_batch_and_reads_see_it_throughout() {
        let dir = tempfile::tempdir().unwrap();
        let (store, r) = open(dir.path());
        let raw = store.tree("t.a").unwrap();
        for round in 0..3u64 {
            for i in 0..SETTLE_GROUPS {
                // One key rewritten by every group, one new key per group.
                r[0].put(b"hot", &(round, i)).unwrap();
                r[0].put(&(round * SETTLE_GROUPS + i).to_be_bytes(), &i)
                    .unwrap();
                if i == SETTLE_GROUPS - 1 {
                    // Waits for the settler's previous batch, so this one
                    // is handed over at this commit.
                    store.journal().sync().unwrap();
                }
                store.journal().commit().unwrap();
                // Before, while and after the settler copies: the newest value.
                assert_eq!(r[0].get::<(u64, u64)>(b"hot").unwrap(), Some((round, i)));
            }
            assert_eq!(store.journal().unsettled(), 0, "handed to the settler");
        }
        let t = std::time::Instant::now();
        while raw.len() < usize::try_from(3 * SETTLE_GROUPS + 1).unwrap() {
            assert!(t.elapsed().as_secs() < 30, "the settler never copied");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        store.journal().settle().unwrap();
        let hot: (u64, u64) =
            rmp_serde::from_slice(&raw.get(b"hot").unwrap().unwrap()[1..]).unwrap();
        assert_eq!(hot, (2, SETTLE_GROUPS - 1));
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
            // The checkpoint's thread deletes the full segment after sled's
            // flush, and creates the one after the new current one ahead.
            let numbers = || -> Vec<u64> {
                segments(&wal)
                    .unwrap()
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect()
            };
            let t = std::time::Instant::now();
            while numbers() != [1, 2] {
                assert!(t.elapsed().as_secs() < 30, "segments stay {:?}", numbers());
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let spare = segments(&wal).unwrap().pop().unwrap().1;
            assert_eq!(std::fs::metadata(spare).unwrap().len(), 0, "unused yet");
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
