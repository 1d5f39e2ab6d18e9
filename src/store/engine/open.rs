//! Opening a store directory: inspect it ([`super::recovery`]), refuse what recovery cannot
//! vouch for, apply the log, checkpoint, start a new log segment, and start the applier
//! and checkpoint threads. Also `paykeep store check`, which inspects without changing
//! anything of paykeep's.
//!
//! Order of a new store's first open: its first log segment (carrying the new identity)
//! is created before sled is stamped with it, so a crash in between leaves a log with no
//! record beside an empty sled, which recovery knows as a store never used.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use crate::clock::{SharedClock, SystemClock};
use crate::store::meta::{self, SledMeta};
use crate::store::recovery::{self, Finding, Plan};
use crate::store::wal::{self, StoreId};
use crate::store::{
    applier, checkpoint, codec, deliveries, journal, journal::JournalClock, key_filter,
    replay_cache, Durability, GroupRecord, Store, StoreError, Trees, TREE_NAMES,
};

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub durability: Durability,
    /// Log segment size and preallocation ([`wal::SEGMENT_BYTES_DEFAULT`]; tests use small
    /// ones to exercise checkpoints).
    pub segment_bytes: u64,
    /// Start on a store recovery cannot vouch for, keeping what can be read
    /// (`paykeep serve --accept-data-loss`).
    pub accept_data_loss: bool,
    /// sled's page cache in bytes (`store.cache_capacity_mb`).
    pub cache_capacity_bytes: u64,
    /// What dates the journal's records ([`crate::clock::SystemClock`] unless a test hands
    /// in a [`crate::clock::ManualClock`]).
    pub clock: SharedClock,
}

impl OpenOptions {
    pub fn new(durability: Durability) -> OpenOptions {
        OpenOptions {
            durability,
            segment_bytes: wal::SEGMENT_BYTES_DEFAULT,
            accept_data_loss: false,
            cache_capacity_bytes: CACHE_CAPACITY_BYTES_DEFAULT,
            clock: Arc::new(SystemClock),
        }
    }
}

/// sled's page cache unless the options say otherwise (`store.cache_capacity_mb`'s default).
pub const CACHE_CAPACITY_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;

/// What a start with `--accept-data-loss` on a damaged store lost, for the log and the
/// `system.store_recovered_with_loss` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossReport {
    /// Each finding, as `paykeep store check` prints it.
    pub findings: Vec<String>,
    /// What was dropped, one line each.
    pub dropped: Vec<String>,
    /// Where the files that were not used were moved.
    pub moved_to: PathBuf,
}

/// What `paykeep store check` found.
#[derive(Debug)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    /// Log segments present.
    pub segments: usize,
    /// Whole records in the log.
    pub records: usize,
    /// The highest LSN the store holds.
    pub end_lsn: u64,
    /// A torn tail recovery would ignore: (segment, offset).
    pub torn_tail: Option<(PathBuf, u64)>,
}

/// sled's files in a store directory (everything but the log); `db` is the one that holds
/// the data, so sled counts as present only if it is there.
const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];
const SLED_DATA_FILE: &str = "db";

/// A directory as inspection left it: sled, if it opened, and recovery's plan.
struct Inspection {
    db: Option<sled::Db>,
    sled_broken: bool,
    plan: Plan,
}

/// Opens sled if its files are there (never creates them) and plans recovery.
fn inspect(dir: &Path, cache_capacity_bytes: u64) -> Result<Inspection, StoreError> {
    let present = dir.join(SLED_DATA_FILE).exists();
    let (db, sled_meta, broken) = if present {
        match open_sled(dir, cache_capacity_bytes).and_then(|db| Ok((meta::read(&db)?, db))) {
            Ok((sled_meta, db)) => (Some(db), sled_meta, None),
            Err(error @ (StoreError::Schema { .. } | StoreError::InUse { .. })) => {
                return Err(error)
            }
            Err(error) => (None, SledMeta::default(), Some(error.to_string())),
        }
    } else {
        (None, SledMeta::default(), None)
    };
    let mut plan = recovery::plan(dir, &sled_meta);
    let sled_broken = broken.is_some();
    if let Some(found) = broken {
        let sled_path = dir.join("db");
        plan.findings.retain(|f| f.path != sled_path);
        plan.findings.insert(
            0,
            Finding {
                path: sled_path,
                offset: None,
                found: format!("sled files that do not open ({found})"),
                expected: "the sled half of a paykeep store".to_owned(),
            },
        );
        plan.dropped.insert(
            0,
            format!("everything in sled's files under {}", dir.display()),
        );
    }
    Ok(Inspection {
        db,
        sled_broken,
        plan,
    })
}

/// Inspects `dir` as `paykeep serve` would at start-up, without applying, checkpointing or
/// deleting anything (sled itself may tidy its own files when it opens).
///
/// # Errors
/// [`StoreError::NotAStore`] if `dir` holds no store; [`StoreError::Schema`],
/// [`StoreError::InUse`] as at open.
pub fn check(dir: &Path) -> Result<CheckReport, StoreError> {
    let inspection = caught(dir, || {
        if !dir.is_dir() {
            return Err(StoreError::NotAStore {
                path: dir.to_path_buf(),
            });
        }
        inspect(dir, CACHE_CAPACITY_BYTES_DEFAULT)
    })?;
    let plan = inspection.plan;
    if plan.is_new() && inspection.db.is_none() {
        return Err(StoreError::NotAStore {
            path: dir.to_path_buf(),
        });
    }
    Ok(CheckReport {
        segments: plan.segments.len(),
        records: plan.records.len(),
        end_lsn: plan.end_lsn,
        torn_tail: plan.torn_tail,
        findings: plan.findings,
    })
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// Recovery: the directory is inspected first ([`recovery`]); a store it cannot vouch
    /// for is refused unless `options.accept_data_loss`. Then every record left in the log
    /// is applied to sled again, in order, sled is checkpointed, a new log segment is
    /// started and the old ones are deleted.
    ///
    /// # Errors
    /// [`StoreError::Damaged`] with every finding; [`StoreError::Schema`] for a store of
    /// another schema version; [`StoreError::InUse`] if another process holds it;
    /// [`StoreError::Sync`] / [`StoreError::Sled`] on I/O errors. Never panics on any
    /// on-disk content: a panic inside sled is caught and reported as damage.
    pub fn open_with(dir: &Path, options: OpenOptions) -> Result<Store, StoreError> {
        caught(dir, || open(dir, options))
    }
}

fn open(dir: &Path, options: OpenOptions) -> Result<Store, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| path_error(dir, &e))?;
    let Inspection {
        db,
        sled_broken,
        plan,
    } = inspect(dir, options.cache_capacity_bytes)?;
    if !plan.findings.is_empty() && !options.accept_data_loss {
        return Err(StoreError::Damaged {
            findings: plan.findings,
        });
    }
    if let Some((path, offset)) = &plan.torn_tail {
        tracing::info!(segment = %path.display(), offset, "recovery ignores a torn tail (a record never acknowledged)");
    }
    let loss = if plan.findings.is_empty() {
        None
    } else {
        Some(accept_loss(dir, &plan, sled_broken)?)
    };
    let db = match db {
        Some(db) => db,
        None => open_sled(dir, options.cache_capacity_bytes)?,
    };
    let meta_tree = db.open_tree(meta::TREE)?;
    let trees = Arc::new(Trees::open(&db)?);
    let failed = Arc::new(AtomicBool::new(false));
    let mut checkpointer =
        checkpoint::Checkpointer::new(db.clone(), dir, options.durability, Arc::clone(&failed))?;
    let wal = if plan.is_new() {
        let store_id = new_store_id();
        let wal = wal::Wal::create(dir, store_id, 1, 1, options.segment_bytes)?;
        meta::stamp(&meta_tree, &store_id)?;
        checkpointer.checkpoint(None)?;
        wal
    } else {
        let store_id = plan.store_id.unwrap_or_else(new_store_id);
        apply_records(&plan, &trees, options.accept_data_loss)?;
        meta::stamp(&meta_tree, &store_id)?;
        meta::set_applied_lsn(&meta_tree, plan.end_lsn)?;
        meta::set_checkpoint_lsn(&meta_tree, plan.end_lsn)?;
        checkpointer.checkpoint(None)?;
        let next = plan.segments.last().map_or(1, |last| last + 1);
        let wal = wal::Wal::create(dir, store_id, next, plan.end_lsn + 1, options.segment_bytes)?;
        match &loss {
            Some(report) => move_aside(dir, &report.moved_to, &plan.segments)?,
            None => wal::remove_through(dir, next - 1)?,
        }
        if !plan.records.is_empty() {
            tracing::info!(
                records = plan.records.len(),
                "recovery applied the write-ahead log"
            );
        }
        wal
    };
    wal::remove_leftovers(dir)?;
    let (checkpoints, checkpoint_thread) = checkpointer.spawn();
    let sled_writes = sled_writes_metric()?;
    let backlog = Arc::new(applier::Backlog::default());
    let (applier, applier_thread) = applier::spawn(
        Arc::clone(&trees),
        meta_tree,
        checkpoints.clone(),
        Arc::clone(&failed),
        sled_writes.clone(),
        Arc::clone(&backlog),
    );
    let (next_seq, committed_at_ms) = journal::next_seq(&trees)?;
    let journal_clock = JournalClock {
        next_seq,
        committed_at_ms,
        last_day: journal::last_day(&trees)?,
    };
    let deliveries_index = deliveries::DeliveryIndex::default();
    deliveries_index.load_counts(&trees.deliveries_by_status, &trees.fanout)?;
    // Make the files' directory entries durable once, so a new store survives power loss.
    wal::sync_dir(dir)?;
    let trees_for_build = Arc::clone(&trees);
    Ok(Store {
        trees,
        wal: Mutex::new(wal),
        applier: Some(applier),
        applier_thread: Some(applier_thread),
        checkpoints: Some(checkpoints),
        checkpoint_thread: Some(checkpoint_thread),
        durability: options.durability,
        journal_clock: Mutex::new(journal_clock),
        clock: options.clock,
        last_epoch: AtomicU64::new(0),
        failed,
        deliveries_index,
        replay_cache: replay_cache::ReplayCache::default(),
        loss,
        sled_writes,
        backlog,
        key_filter_build: Some(key_filter::spawn_build(trees_for_build, Trees::all)),
    })
}

/// `store_sled_writes_total{tree}`, with every tree's series at 0.
fn sled_writes_metric() -> Result<prometheus::IntCounterVec, StoreError> {
    let metric = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "store_sled_writes_total",
            "sled inserts and removes made by the applier, per tree",
        ),
        &["tree"],
    )
    .map_err(|e| StoreError::Codec {
        detail: e.to_string(),
    })?;
    for name in TREE_NAMES {
        metric.with_label_values(&[name]).inc_by(0);
    }
    Ok(metric)
}

/// Applies the plan's records to sled in LSN order. A record whose bytes pass their CRC
/// but do not decode is corruption (or a record of another build): refused, or with
/// `accept_data_loss` dropped and logged.
fn apply_records(plan: &Plan, trees: &Trees, accept_data_loss: bool) -> Result<(), StoreError> {
    for record in &plan.records {
        let decoded =
            codec::decode::<GroupRecord>(&record.payload).and_then(|group| group.apply(trees));
        if let Err(error) = decoded {
            let at = format!(
                "segment {} at offset {} (LSN {})",
                record.segment, record.offset, record.lsn
            );
            if !accept_data_loss {
                return Err(StoreError::Corrupt {
                    detail: format!("write-ahead log {at} does not apply: {error}"),
                });
            }
            tracing::error!(operation = "recovery", record = %at, %error, "dropped a log record that does not apply");
        }
    }
    Ok(())
}

/// Logs at error level what starting on a damaged store loses, moves sled's files aside if
/// they do not open (so a new sled can start), and says where the unused files go.
fn accept_loss(dir: &Path, plan: &Plan, sled_broken: bool) -> Result<LossReport, StoreError> {
    let moved_to = dir.join(format!("damaged-{}", crate::domain::time::now_ms()));
    for finding in &plan.findings {
        tracing::error!(operation = "recovery", finding = %finding, "store damage accepted (--accept-data-loss)");
    }
    for dropped in &plan.dropped {
        tracing::error!(operation = "recovery", dropped = %dropped, "dropped with the damage");
    }
    std::fs::create_dir_all(moved_to.join(wal::DIR)).map_err(|e| path_error(&moved_to, &e))?;
    if sled_broken {
        for name in std::fs::read_dir(dir)
            .map_err(|e| path_error(dir, &e))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
        {
            let name_str = name.to_string_lossy();
            if SLED_FILES.contains(&name_str.as_ref()) || name_str.starts_with("snap.") {
                let from = dir.join(&name);
                std::fs::rename(&from, moved_to.join(&name)).map_err(|e| path_error(&from, &e))?;
            }
        }
    }
    tracing::error!(operation = "recovery", moved_to = %moved_to.display(), "the damaged files are kept there");
    Ok(LossReport {
        findings: plan.findings.iter().map(ToString::to_string).collect(),
        dropped: plan.dropped.clone(),
        moved_to,
    })
}

/// Moves the old log segments into `moved_to/wal` (instead of deleting them).
fn move_aside(dir: &Path, moved_to: &Path, segments: &[u64]) -> Result<(), StoreError> {
    for &id in segments {
        let from = wal::segment_path(dir, id);
        let to = moved_to
            .join(wal::DIR)
            .join(from.file_name().unwrap_or_default());
        std::fs::rename(&from, &to).map_err(|e| path_error(&from, &e))?;
    }
    wal::sync_dir(&dir.join(wal::DIR))
}

fn new_store_id() -> StoreId {
    ulid::Ulid::new().to_bytes()
}

/// Attempts to open sled before a lock held by a store dropped a moment ago counts as
/// held by another process, and the pause between attempts.
/// sled's segment size. sled 0.34 writes any page larger than a quarter of a segment
/// (less a header) to a file of its own under `blobs/` (`pagecache/logger.rs`), and a leaf
/// holds up to 17 values before it splits: at the default 512 KiB, a leaf of payments with
/// every field at its maximum (about 15 KiB each) became a file per rewrite. Such values
/// are stored compressed ([`super::codec`], about 8 KiB), and 1 MiB keeps a leaf of 17 of
/// them inline with room to spare; larger segments cost the create tail (sled flushes a
/// segment's buffer at a time: BENCHMARKS.md). A sled parameter fixed when the store is
/// created.
pub const SLED_SEGMENT_BYTES: usize = 1 << 20;

const SLED_LOCK_ATTEMPTS: u32 = 20;
const SLED_LOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Opens sled in `dir`. sled 0.34 does not join its flusher thread when a `Db` is dropped,
/// and that thread keeps the file lock until it exits (spacejam/sled#1289), so an open
/// right after a drop in the same process may find the lock still held for a few
/// milliseconds: it is retried for up to a second. A lock held longer (another paykeep on
/// the same directory) is [`StoreError::InUse`].
fn open_sled(dir: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_capacity_bytes)
        .segment_size(SLED_SEGMENT_BYTES)
        // sled's own flusher writes its log back and fsyncs it every 50 ms, so a
        // checkpoint's fdatasync finds little dirty data and does not hold up the disk
        // the write-ahead log syncs to. Durability never depends on it.
        .flush_every_ms(Some(50))
        .mode(sled::Mode::HighThroughput);
    let mut attempt = 1;
    loop {
        let opened = catch_panic(|| config.open()).map_err(|panic| StoreError::Corrupt {
            detail: format!("sled gave up opening its files: {panic}"),
        })?;
        match opened {
            Err(sled::Error::Io(e)) if e.to_string().starts_with("could not acquire lock") => {
                if attempt >= SLED_LOCK_ATTEMPTS {
                    return Err(StoreError::InUse {
                        path: dir.to_path_buf(),
                    });
                }
                attempt += 1;
                std::thread::sleep(SLED_LOCK_PAUSE);
            }
            result => return Ok(result?),
        }
    }
}

/// Runs `f` (which reads the store in `dir`), turning a panic into
/// [`StoreError::Damaged`]: sled 0.34 panics on some damaged files (e.g. "tried to
/// serialize Uninitialized"), and no on-disk content may panic the process.
fn caught<T>(dir: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_panic(f).unwrap_or_else(|panic| {
        Err(StoreError::Damaged {
            findings: vec![Finding {
                path: dir.join("db"),
                offset: None,
                found: format!("sled files it gave up reading ({panic})"),
                expected: "the sled half of a paykeep store".to_owned(),
            }],
        })
    })
}

/// Runs `f`; a panic becomes `Err` with its message, without the default hook's report on
/// stderr (the caller reports it as damage).
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let message = Arc::new(Mutex::new(String::new()));
    let hook_message = Arc::clone(&message);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut m) = hook_message.lock() {
            *m = format!("{payload}{location}");
        }
    }));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|_| message.lock().map(|m| m.clone()).unwrap_or_default())
}

fn path_error(path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::Sync {
        detail: format!("{}: {error}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, Store, SCHEMA_VERSION};

    /// A store written by another schema version is refused by name at open, not read
    /// (nothing is migrated: DESIGN "no silent start on a store you cannot vouch for").
    #[test]
    fn a_store_of_an_older_schema_version_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), Durability::FlushAndSync).unwrap());
        {
            let db = open_sled(dir.path(), CACHE_CAPACITY_BYTES_DEFAULT).unwrap();
            let meta_tree = db.open_tree(meta::TREE).unwrap();
            meta_tree
                .insert("schema_version", &[SCHEMA_VERSION - 1])
                .unwrap();
            db.flush().unwrap();
        }
        let refused = Store::open(dir.path(), Durability::FlushAndSync).err();
        assert!(
            matches!(refused, Some(StoreError::Schema { found }) if found == SCHEMA_VERSION - 1),
            "{refused:?}"
        );
        let message = refused.unwrap().to_string();
        assert!(
            message.contains(&format!("schema version {}", SCHEMA_VERSION - 1)),
            "{message}"
        );
    }
}
