//! Persistent storage: one sled database in the data directory, behind typed
//! methods so that key layouts and durability rules live in this file only.
//!
//! # Layout
//! - `meta`: `schema_version` (u32, big-endian; see [`SCHEMA_VERSION`]).
//!   An older store opens, reads as it is (JSON records, journal trees
//!   replayed once) and is marked with this build's version, so that an
//!   older daemon refuses it instead of misreading it.
//! - every other tree of bots, orders, fills and wallets: [`Records`].
//! - `journal/` (beside `db/`): the write-ahead [`Journal`]'s segment files.
//! - `events`: key = sequence number (u64, big-endian, so iteration is in
//!   order), value = the protobuf-encoded `virc.v1.Event`. Protobuf is the
//!   value format because the event is the API's own versioned type: a newer
//!   daemon reads older events unchanged.
//!
//! # No sled batches or transactions
//! The first `apply_batch` or transaction in a process switches every sled
//! operation, in every tree, from a lock-free counter to a global RwLock
//! (sled 0.34's `concurrency_control`), and each batch then holds that
//! lock's write side: one event-log batch stalled a bot's tick for up to
//! half a millisecond. Writes that must land together go through the
//! [`Journal`] (one file append); runs of records that may be cut short
//! after a crash are written one by one, since sled recovers a prefix of
//! the writes.
//!
//! # Exclusive use
//! A `virc.lock` file in the data directory is locked (`flock`) for the
//! lifetime of the [`Store`]; a second daemon on the same directory fails
//! fast with [`StoreError::Locked`] instead of sharing the database.

mod journal;

pub use journal::Journal;

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Schema version this build writes and reads: 2 writes records in
/// MessagePack (see [`Records`]) and reads schema 1's JSON ones; 3 keeps
/// the journal in files (see [`Journal`]) and replays the journal trees
/// of 1 and 2 once.
pub const SCHEMA_VERSION: u32 = 3;

/// The first byte of a binary record: a byte that starts no JSON text and
/// no MessagePack value (0xc1 is "never used" in its format).
pub const BINARY: u8 = 0xc1;
const SCHEMA_KEY: &[u8] = b"schema_version";

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error(
        "data dir {dir} is in use by another virc-daemon{holder}; stop that daemon first, or start this one with another --data-dir"
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// " (pid N)" when the holder's pid is known.
        holder: String,
    },
    /// The data was written by a newer virc.
    #[error(
        "data dir {dir} holds schema version {found}, written by a newer virc; this virc-daemon reads up to version {supported}: upgrade virc-daemon, or use another --data-dir"
    )]
    NewerSchema {
        /// The data directory.
        dir: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// A file-system error on the data directory.
    #[error("cannot use data dir {dir}: {source}")]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An error inside sled.
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("corrupt record in tree {tree}: {detail}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// sled's page cache: enough for the bots, orders and the recent trades
/// the market reads back, while the daemon's memory stays flat.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The daemon's database and the lock on its directory.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    events: sled::Tree,
    journal: Journal,
    dir: PathBuf,
    _lock: std::sync::Arc<File>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, taking its lock.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        private_dir(dir)?;
        let lock = lock_dir(dir)?;
        let config = sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            // sled caches up to 1 GB by default; the recorder would fill it.
            .cache_capacity(CACHE_BYTES);
        // We hold the directory's lock, so no other daemon has the store. sled
        // releases its own file lock from its flusher thread, a moment after
        // the previous handle in this process was dropped: wait for it.
        let mut tries = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if tries < 40 && e.to_string().contains("could not acquire lock") =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        check_schema(&db, dir)?;
        journal::migrate_tree_journals(&db)?;
        let journal = Journal::open(db.clone(), &dir.join("journal"))?;
        let events = db.open_tree("events")?;
        Ok(Self {
            db,
            events,
            journal,
            dir: dir.to_owned(),
            _lock: std::sync::Arc::new(lock),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes everything written so far to disk, blocking (tests that
    /// stand for a crash after a flush).
    #[cfg(test)]
    pub(crate) fn flush_now(&self) {
        if let Err(e) = self.journal.sync() {
            panic!("journal sync failed: {e}");
        }
        if let Err(e) = self.db.flush() {
            panic!("flush failed: {e}");
        }
    }

    /// Flushes everything written so far to disk: the journal's committed
    /// groups, then sled.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.journal.sync()?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// The store's write-ahead journal, whose commits make the writes to
    /// [`journaled`](Self::journaled) trees durable.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The sled database, for tests that look under the records.
    #[cfg(test)]
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// A tree of records, for the runtime and the simulated exchange.
    pub fn records(&self, name: &'static str) -> Result<Records, StoreError> {
        Ok(Records {
            tree: self.db.open_tree(name)?,
            name,
            journal: None,
        })
    }

    /// A tree of records written through the store's [`Journal`]: a
    /// write is durable when the journal next commits (one append to a
    /// file for all the writes of the group), and reaches the tree itself
    /// when the journal settles.
    pub fn journaled(&self, name: &'static str) -> Result<Records, StoreError> {
        let tree = self.db.open_tree(name)?;
        let member = self.journal.member(name, tree.clone());
        Ok(Records {
            tree,
            name,
            journal: Some((self.journal.clone(), member)),
        })
    }

    /// A raw tree, for data with its own encoding (the trade recorder).
    pub fn tree(&self, name: &'static str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// The event log.
    pub fn events(&self) -> EventLog {
        EventLog {
            tree: self.events.clone(),
        }
    }
}

/// A tree of serde records under byte keys.
///
/// A record is written as [`BINARY`] followed by MessagePack with field
/// names (self-describing, so a field added with `#[serde(default)]`
/// reads old records as JSON did), amounts and ids as bytes (see
/// [`virc_core::compact`]). Records written as JSON by schema 1 read
/// unchanged: a JSON text never starts with that byte. MessagePack
/// replaced JSON because formatting decimals and uuids as text and
/// escaping field names was a third of the simulated exchange's work per
/// fill, on every bot's tick-to-order path.
#[derive(Clone)]
pub struct Records {
    tree: sled::Tree,
    name: &'static str,
    /// Set for trees written through the journal, with this tree's number in it.
    journal: Option<(Journal, u16)>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Records {
    /// The tree's name, for error messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            tree: self.name,
            detail,
        };
        match bytes.split_first() {
            Some((&BINARY, rest)) => {
                rmp_serde::from_slice(rest).map_err(|e| corrupt(e.to_string()))
            }
            _ => serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string())),
        }
    }

    /// Writes `value` under `key` (durable at the next flush; for a
    /// journaled tree, when the journal next commits).
    pub fn put<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StoreError> {
        let bytes = self.encode(value)?;
        match &self.journal {
            Some((j, i)) => j.write(*i, key, Some(bytes)),
            None => {
                self.tree.insert(key, bytes)?;
            }
        }
        Ok(())
    }

    /// Settles a journaled tree, so that a scan of it sees every write.
    fn settled(&self) -> Result<&sled::Tree, StoreError> {
        if let Some((j, _)) = &self.journal {
            j.settle()?;
        }
        Ok(&self.tree)
    }

    /// A record's bytes.
    fn encode<T: serde::Serialize>(&self, value: &T) -> Result<Vec<u8>, StoreError> {
        // Room for a typical record up front, so that encoding an order
        // does not grow its buffer several times.
        let mut bytes = Vec::with_capacity(512);
        bytes.push(BINARY);
        let mut ser = rmp_serde::Serializer::new(&mut bytes).with_struct_map();
        serde::Serialize::serialize(value, &mut ser).map_err(|e| StoreError::Corrupt {
            tree: self.name,
            detail: e.to_string(),
        })?;
        Ok(bytes)
    }

    /// Makes everything written so far durable (the whole sled database,
    /// as sled flushes; for a journaled tree, the journal too).
    pub async fn flush(&self) -> Result<(), StoreError> {
        if let Some((j, _)) = &self.journal {
            j.sync()?;
        }
        self.tree.flush_async().await?;
        Ok(())
    }

    /// Reads the record under `key`.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.journal.as_ref().and_then(|(j, i)| j.read(*i, key)) {
            Some(journal::Pending::Put(v)) => self.decode(&v).map(Some),
            Some(journal::Pending::Removed) => Ok(None),
            None => self.tree.get(key)?.map(|v| self.decode(&v)).transpose(),
        }
    }

    /// Removes the record under `key`.
    pub fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        match &self.journal {
            Some((j, i)) => j.write(*i, key, None),
            None => {
                self.tree.remove(key)?;
            }
        }
        Ok(())
    }

    /// Every record, in key order.
    pub fn all<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<(sled::IVec, T)>, StoreError> {
        self.scan_prefix(&[])
    }

    /// Records from the last key backwards, while `keep` says so.
    pub fn scan_rev<T: serde::de::DeserializeOwned>(
        &self,
        mut keep: impl FnMut(&T) -> bool,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for kv in self.settled()?.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = kv?;
            let value: T = self.decode(&v)?;
            if keep(&value) {
                out.push(value);
            }
        }
        Ok(out)
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn scan_prefix<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(sled::IVec, T)>, StoreError> {
        self.settled()?
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k, self.decode(&v)?))
            })
            .collect()
    }

    /// The last `limit` records whose key starts with `prefix`, newest (last key) first.
    pub fn scan_prefix_rev<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        self.settled()?
            .scan_prefix(prefix)
            .rev()
            .take(limit)
            .map(|kv| self.decode(&kv?.1))
            .collect()
    }

    /// Removes every record whose key starts with `prefix` (through the
    /// journal for a journaled tree, so that a replay cannot bring one back).
    pub fn remove_prefix(&self, prefix: &[u8]) -> Result<(), StoreError> {
        let tree = self.settled()?;
        for k in tree.scan_prefix(prefix).keys() {
            self.remove(&k?)?;
        }
        Ok(())
    }

    /// The last key, if any.
    pub fn last_key(&self) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.settled()?.last()?.map(|(k, _)| k))
    }
}

/// The persisted event log: sequence number → encoded event.
#[derive(Clone)]
pub struct EventLog {
    tree: sled::Tree,
}

impl EventLog {
    /// Sequence numbers of the oldest and newest stored events.
    pub fn bounds(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let first = self.tree.first()?;
        let last = self.tree.last()?;
        Ok(match (first, last) {
            (Some((a, _)), Some((b, _))) => Some((decode_seq(&a)?, decode_seq(&b)?)),
            _ => None,
        })
    }

    /// Appends `(seq, encoded event)`s in order. One insert each, not a
    /// sled batch (see the module docs): sled recovers a prefix of the
    /// writes, so after a crash the log still ends in a run without gaps.
    pub fn append(&self, batch: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        for (seq, bytes) in batch {
            self.tree.insert(seq.to_be_bytes(), bytes.as_slice())?;
        }
        Ok(())
    }

    /// Flushes the log to disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush_async().await?;
        Ok(())
    }

    /// Up to `limit` events with sequence `>= from`, in order.
    pub fn read_from(&self, from: u64, limit: usize) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        self.tree
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((decode_seq(&k)?, v))
            })
            .collect()
    }

    /// Deletes events with sequence `< below`; returns how many were removed.
    pub fn prune_below(&self, below: u64) -> Result<usize, StoreError> {
        let mut n = 0;
        for key in self.tree.range(..below.to_be_bytes()).keys() {
            self.tree.remove(key?)?;
            n += 1;
        }
        Ok(n)
    }
}

fn decode_seq(key: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        tree: "events",
        detail: format!("key of {} bytes", key.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

/// Creates `dir` (and its parents) readable by the owner and group only,
/// as the data directory and everything in it is.
fn private_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|source| StoreError::Io {
            dir: dir.to_owned(),
            source,
        })
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("virc.lock");
    let io = |source| StoreError::Io {
        dir: dir.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o640))
        .map_err(io)?;
    // A process forked by this one (or by a test runner next door) holds a
    // copy of the descriptor, and so the lock, until it execs: give such a
    // copy half a second to go before calling the directory taken.
    let mut tries = 0;
    let locked = loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other,
        }
    };
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            return Err(StoreError::Locked {
                dir: dir.to_owned(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// Opens sled, retrying briefly while its own file lock is still held.
///
/// sled releases that lock from a background thread after the last `Db`
/// handle drops, so a restart inside one process can see it for a while
/// (seconds on a loaded machine; CI saw more than 2 s). `virc.lock`
/// already excludes other daemons, so the only holder can be our own
/// closing instance; waiting up to 10 s for it is safe.
fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir.join("db"))
        .mode(sled::Mode::HighThroughput);
    let mut attempts = 0;
    loop {
        match config.open() {
            // sled reports its lock as kind `Other` with this text, wrapping the EWOULDBLOCK.
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && attempts < 1000 =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

fn check_schema(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    let meta = db.open_tree("meta")?;
    match meta.get(SCHEMA_KEY)? {
        None => {
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            meta.flush()?;
        }
        Some(v) => {
            let arr: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                tree: "meta",
                detail: "schema_version is not 4 bytes".into(),
            })?;
            let found = u32::from_be_bytes(arr);
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    dir: dir.to_owned(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            if found < SCHEMA_VERSION {
                // Older records read as they are; what this build writes
                // from now on an older build could not read, so say so
                // before writing any of it.
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                meta.flush()?;
                tracing::info!(dir = %dir.display(), from = found, to = SCHEMA_VERSION, "Store schema upgraded");
            }
        }
    }
    Ok(())
}

/// Test support: writes a schema version into a closed store.
#[doc(hidden)]
pub fn force_schema_version(dir: &Path, version: u32) -> Result<(), StoreError> {
    let db = open_sled(dir)?;
    db.open_tree("meta")?
        .insert(SCHEMA_KEY, &version.to_be_bytes())?;
    db.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_one_dir_fails_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another virc-daemon"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn lock_is_released_when_the_store_closes() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        force_schema_version(dir.path(), SCHEMA_VERSION + 1).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("newer virc")
                && err.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{err}"
        );
    }

    /// A record as schema 1 stored it, and one as this build does.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        id: virc_core::ids::OrderId,
        size: virc_core::money::Size,
        #[serde(with = "virc_core::compact::decimal")]
        fee: rust_decimal::Decimal,
        note: String,
        #[serde(default)]
        added_later: u32,
    }

    fn rec() -> Rec {
        Rec {
            id: virc_core::ids::OrderId(uuid::Uuid::from_u128(7)),
            size: "0.01000000".parse().unwrap(),
            fee: rust_decimal::Decimal::new(-12_345, 8),
            note: "x".into(),
            added_later: 3,
        }
    }

    #[test]
    fn schema_1_json_records_still_read_and_the_store_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        force_schema_version(dir.path(), 1).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let records = store.records("t").unwrap();
        // Written exactly as schema 1 did, without the later field.
        let old = r#"{"id":"00000000-0000-0000-0000-000000000007","size":"0.01000000","fee":"-0.00012345","note":"x"}"#;
        store.tree("t").unwrap().insert(b"old", old).unwrap();
        records.put(b"new", &rec()).unwrap();
        let want = Rec {
            added_later: 0,
            ..rec()
        };
        assert_eq!(records.get::<Rec>(b"old").unwrap(), Some(want));
        assert_eq!(records.get::<Rec>(b"new").unwrap(), Some(rec()));
        let all: Vec<_> = records.all::<Rec>().unwrap();
        assert_eq!(all.len(), 2);
        // The amounts keep their scale through the bytes.
        assert_eq!(all[0].1.size.to_string(), "0.01000000");
        drop((records, store));
        let db = open_sled(dir.path()).unwrap();
        let v = db
            .open_tree("meta")
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap()
            .unwrap();
        assert_eq!(v.as_ref(), SCHEMA_VERSION.to_be_bytes());
    }

    #[test]
    fn a_damaged_binary_record_is_refused_with_its_tree_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let records = store.records("sim.x.orders").unwrap();
        records.put(b"k", &rec()).unwrap();
        let good = store
            .tree("sim.x.orders")
            .unwrap()
            .get(b"k")
            .unwrap()
            .unwrap();
        assert_eq!(good[0], BINARY);
        for cut in [1, good.len() / 2, good.len() - 1] {
            store
                .tree("sim.x.orders")
                .unwrap()
                .insert(b"k", &good[..cut])
                .unwrap();
            let e = records.get::<Rec>(b"k").unwrap_err().to_string();
            assert!(e.contains("sim.x.orders"), "{e}");
        }
    }

    #[test]
    fn event_log_appends_reads_and_prunes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = store.events();
        assert_eq!(log.bounds().unwrap(), None);
        let batch: Vec<_> = (1..=300u64)
            .map(|s| (s, s.to_le_bytes().to_vec()))
            .collect();
        log.append(&batch).unwrap();
        assert_eq!(log.bounds().unwrap(), Some((1, 300)));
        let got = log.read_from(255, 10).unwrap();
        assert_eq!(
            got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (255..265).collect::<Vec<_>>()
        );
        assert_eq!(log.prune_below(101).unwrap(), 100);
        assert_eq!(log.bounds().unwrap(), Some((101, 300)));
    }
}
