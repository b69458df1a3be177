//! Write groups: the records one operation changes, in several trees, made
//! durable by a single write to a journal and copied into their trees
//! later, off the latency path.
//!
//! # Why
//! Filling a paper order rewrites about a dozen records (the order, the
//! fill, balances, holds, resting orders, reservations), and placing one
//! creates five more. In sled a record that appears or disappears costs
//! 3 to 16 µs, an overwrite well under one, so those writes were most of a
//! bot's tick-to-order time. A journal record costs one insert, and the
//! copy into the trees ([`Journal::settle`]) runs when the daemon is idle.
//! Settling at every idle moment rather than letting groups gather is
//! deliberate: sled copies a whole leaf on each insert, so a journal of
//! many multi-KB records made every commit slower (measured: +15 % p50).
//!
//! # Crash safety
//! sled recovers a prefix of the writes made to a database, so:
//! - a journal record is all of its group or none of it;
//! - anything written after a commit (a bot's record that depends on the
//!   fill) is only recovered with the commit before it;
//! - settling writes the latest value of every key, then removes the
//!   journal records; a crash in between leaves the records, and replaying
//!   them in order at the next open ([`Journal::open`]) writes the same
//!   values again.
//!
//! # Reads
//! Reads through [`Records::get`](super::Records::get) see the newest value
//! (the overlay of written-but-unsettled keys first); scans settle first.

use std::{
    collections::HashMap,
    hash::BuildHasherDefault,
    sync::{Arc, Mutex, MutexGuard},
};

use virc_core::ids::IdHasher;

use super::StoreError;

/// Settle on our own after this many unsettled groups, so memory stays
/// bounded when the daemon is never idle.
const SETTLE_AFTER: u64 = 512;

const PUT: u8 = 1;
const REMOVE: u8 = 0;

/// Unsettled writes of one tree, by key (keys are ours: a cheap hash).
type Overlay = HashMap<Vec<u8>, Option<Vec<u8>>, BuildHasherDefault<IdHasher>>;

/// A write to a key that is not settled yet.
pub(super) enum Pending {
    /// The key holds these bytes.
    Put(Vec<u8>),
    /// The key was removed.
    Removed,
}

/// The journal shared by a set of trees (see the module docs).
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

struct Inner {
    log: sled::Tree,
    trees: Vec<sled::Tree>,
    /// Per tree, the newest value of each key written since the last
    /// settle; `None` is a removal. Plain vectors: turning them into
    /// sled's `IVec` copies them, which settling does off the tick path.
    overlay: Vec<Overlay>,
    /// The group being built, encoded as it grows.
    group: Vec<u8>,
    /// Journal keys `first..next` are committed and not settled.
    first: u64,
    next: u64,
}

impl Journal {
    /// Opens the journal in `log` for `trees`, first replaying whatever an
    /// earlier process committed and did not settle.
    pub(super) fn open(
        log: sled::Tree,
        name: &'static str,
        trees: Vec<sled::Tree>,
    ) -> Result<Self, StoreError> {
        let mut next = 0;
        let mut replayed = 0_u64;
        for kv in &log {
            let (k, v) = kv?;
            let seq: [u8; 8] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                tree: name,
                detail: format!("journal key of {} bytes", k.len()),
            })?;
            next = u64::from_be_bytes(seq).saturating_add(1);
            for op in Ops::new(&v, name) {
                let (tree, key, value) = op?;
                let t = trees.get(usize::from(tree)).ok_or(StoreError::Corrupt {
                    tree: name,
                    detail: format!("journal names tree {tree}, of {}", trees.len()),
                })?;
                match value {
                    Some(v) => t.insert(key, v)?,
                    None => t.remove(key)?,
                };
            }
            log.remove(k)?;
            replayed += 1;
        }
        if replayed > 0 {
            tracing::info!(
                journal = name,
                groups = replayed,
                "Replayed writes committed before the last stop"
            );
        }
        let n = trees.len();
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                log,
                trees,
                overlay: vec![Overlay::default(); n],
                group: Vec::new(),
                first: next,
                next,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way later reads would misread: every update is one insert.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a write of `value` (or a removal, for `None`) to the current group.
    pub(super) fn write(&self, tree: u8, key: &[u8], value: Option<Vec<u8>>) {
        let mut j = self.lock();
        let g = &mut j.group;
        g.push(tree);
        g.push(if value.is_some() { PUT } else { REMOVE });
        push_bytes(g, key);
        if let Some(v) = &value {
            push_bytes(g, v);
        }
        if let Some(o) = j.overlay.get_mut(usize::from(tree)) {
            o.insert(key.to_vec(), value);
        }
    }

    /// The newest write to `key` not yet settled; `None` if the tree
    /// itself must be asked.
    pub(super) fn read(&self, tree: u8, key: &[u8]) -> Option<Pending> {
        self.lock()
            .overlay
            .get(usize::from(tree))
            .and_then(|o| o.get(key))
            .map(|v| v.clone().map_or(Pending::Removed, Pending::Put))
    }

    /// Makes the current group one journal record: after a crash all of
    /// its writes are there or none (durable at the next flush).
    pub fn commit(&self) -> Result<(), StoreError> {
        let mut j = self.lock();
        j.commit()?;
        if j.next - j.first >= SETTLE_AFTER {
            j.settle()?;
        }
        Ok(())
    }

    /// Commits, then copies every unsettled write into its tree and drops
    /// the journal records. Call between operations, when idle.
    pub fn settle(&self) -> Result<(), StoreError> {
        let mut j = self.lock();
        j.commit()?;
        j.settle()
    }

    /// Journal records committed and not settled.
    pub fn unsettled(&self) -> u64 {
        let j = self.lock();
        j.next - j.first
    }
}

impl Inner {
    fn commit(&mut self) -> Result<(), StoreError> {
        if self.group.is_empty() {
            return Ok(());
        }
        // Copied into sled's buffer either way; the group keeps its
        // capacity for the next one instead of growing it again.
        self.log
            .insert(self.next.to_be_bytes(), self.group.as_slice())?;
        self.group.clear();
        self.next += 1;
        Ok(())
    }

    fn settle(&mut self) -> Result<(), StoreError> {
        if self.first == self.next {
            return Ok(());
        }
        // One write per key: a sled batch would take a lock that stalls
        // every other writer, and atomicity is the journal's job here.
        for (tree, overlay) in self.trees.iter().zip(&mut self.overlay) {
            for (k, v) in overlay.drain() {
                match v {
                    Some(v) => tree.insert(k, v)?,
                    None => tree.remove(k)?,
                };
            }
        }
        for seq in self.first..self.next {
            self.log.remove(seq.to_be_bytes())?;
        }
        self.first = self.next;
        Ok(())
    }
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Records are a few KB at most; u32 lengths are ample.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The writes of one journal record, decoded.
struct Ops<'a> {
    rest: &'a [u8],
    name: &'static str,
}

impl<'a> Ops<'a> {
    fn new(bytes: &'a [u8], name: &'static str) -> Self {
        Self { rest: bytes, name }
    }

    fn corrupt(&mut self, what: &str) -> StoreError {
        self.rest = &[];
        StoreError::Corrupt {
            tree: self.name,
            detail: format!("journal record cut short in {what}"),
        }
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], StoreError> {
        let Some((len, rest)) = self.rest.split_first_chunk::<4>() else {
            return Err(self.corrupt(what));
        };
        let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
        if rest.len() < len {
            return Err(self.corrupt(what));
        }
        let (b, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(b)
    }
}

impl<'a> Iterator for Ops<'a> {
    type Item = Result<(u8, &'a [u8], Option<&'a [u8]>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((&[tree, kind], rest)) = self.rest.split_first_chunk::<2>() else {
            return Some(Err(self.corrupt("a write's header")));
        };
        self.rest = rest;
        Some((|| {
            let key = self.bytes("a key")?;
            let value = match kind {
                PUT => Some(self.bytes("a value")?),
                REMOVE => None,
                k => {
                    self.rest = &[];
                    return Err(StoreError::Corrupt {
                        tree: self.name,
                        detail: format!("journal write of unknown kind {k}"),
                    });
                }
            };
            Ok((tree, key, value))
        })())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::store::Store;

    fn open(dir: &std::path::Path) -> (Store, Journal, [super::super::Records; 2]) {
        let store = Store::open(dir).unwrap();
        let (j, r) = store.journaled("t.journal", ["t.a", "t.b"]).unwrap();
        (store, j, r)
    }

    #[test]
    fn reads_see_unsettled_writes_and_settle_moves_them_into_the_trees() {
        let dir = tempfile::tempdir().unwrap();
        let (store, j, r) = open(dir.path());
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
        assert!(store.tree("t.journal").unwrap().is_empty());
    }

    #[test]
    fn scans_settle_first() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, _j, r) = open(dir.path());
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
            let (store, j, r) = open(dir.path());
            r[0].put(b"k", &1u32).unwrap();
            r[1].put(b"gone", &9u32).unwrap();
            j.commit().unwrap();
            r[0].put(b"k", &2u32).unwrap();
            r[1].remove(b"gone").unwrap();
            j.commit().unwrap();
            // Not committed: lost with the crash, as a whole.
            r[0].put(b"k", &3u32).unwrap();
            r[1].put(b"half", &4u32).unwrap();
            store.flush_now();
            // Dropped without settling, as after kill -9.
        }
        let (store, j, r) = open(dir.path());
        assert_eq!(j.unsettled(), 0);
        assert!(store.tree("t.journal").unwrap().is_empty());
        assert_eq!(r[0].get::<u32>(b"k").unwrap(), Some(2));
        assert_eq!(r[1].get::<u32>(b"gone").unwrap(), None);
        assert_eq!(r[1].get::<u32>(b"half").unwrap(), None);
    }

    #[test]
    fn a_cut_record_is_refused_with_the_tree_named() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let log = store.tree("t.journal").unwrap();
            log.insert(0u64.to_be_bytes(), vec![0, PUT, 0, 0, 0, 9, b'k'])
                .unwrap();
            store.flush_now();
        }
        let store = Store::open(dir.path()).unwrap();
        let err = store
            .journaled("t.journal", ["t.a"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.journal") && err.contains("cut short"),
            "{err}"
        );
    }

    #[test]
    fn settles_on_its_own_when_the_daemon_is_never_idle() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, j, r) = open(dir.path());
        for i in 0..SETTLE_AFTER {
            r[0].put(&i.to_be_bytes(), &i).unwrap();
            j.commit().unwrap();
        }
        assert_eq!(j.unsettled(), 0);
    }
}
