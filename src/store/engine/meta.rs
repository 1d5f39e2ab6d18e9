//! The `meta` tree: what sled's half of the store says about itself, for recovery to check
//! against the log ([`super::recovery`]).
//!
//! Keys: `schema_version` (one byte, [`super::SCHEMA_VERSION`]), `store_id` (16 bytes, the
//! identity every log segment carries too), `checkpoint_lsn` (u64 BE: sled durably holds
//! every record through it; written by checkpoints just before sled's flush) and
//! `applied_lsn` (u64 BE: the last record the applier put in sled; durable whenever sled's
//! own flusher or a checkpoint has written it back, so it is a lower bound). Only recovery
//! at open, the applier and the checkpoint thread write here.

use crate::store::wal::StoreId;
use crate::store::{StoreError, SCHEMA_VERSION};

/// The tree's name.
pub const TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema_version";
const STORE_ID_KEY: &[u8] = b"store_id";
const CHECKPOINT_LSN_KEY: &[u8] = b"checkpoint_lsn";
const APPLIED_LSN_KEY: &[u8] = b"applied_lsn";
/// The tree every sled database has, holding nothing of paykeep's.
const SLED_DEFAULT_TREE: &[u8] = b"__sled__default";

/// What sled's `meta` says (all absent for a new, empty sled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SledMeta {
    pub store_id: Option<StoreId>,
    pub checkpoint_lsn: u64,
    pub applied_lsn: u64,
    /// Whether any tree but sled's default one holds a key (a sled without a `store_id`
    /// that holds data is no paykeep store of this schema).
    pub has_data: bool,
}

impl SledMeta {
    /// The highest LSN sled says it has.
    pub fn lsn(&self) -> u64 {
        self.checkpoint_lsn.max(self.applied_lsn)
    }
}

/// Reads `meta` without writing anything.
///
/// # Errors
/// [`StoreError::Schema`] for a store of another schema version; [`StoreError::Corrupt`]
/// for a value of the wrong size; [`StoreError::Sled`] on a read error.
pub fn read(db: &sled::Db) -> Result<SledMeta, StoreError> {
    // Trees that exist but hold nothing do not count: a first start that crashed after
    // opening its trees and before stamping `meta` left nothing to vouch for.
    let mut has_data = false;
    for name in db.tree_names() {
        if name.as_ref() != SLED_DEFAULT_TREE && !db.open_tree(&name)?.is_empty() {
            has_data = true;
            break;
        }
    }
    if !db
        .tree_names()
        .iter()
        .any(|name| name.as_ref() == TREE.as_bytes())
    {
        return Ok(SledMeta {
            has_data,
            ..SledMeta::default()
        });
    }
    let meta = db.open_tree(TREE)?;
    match meta.get(SCHEMA_KEY)? {
        Some(v) if v.as_ref() != [SCHEMA_VERSION] => {
            return Err(StoreError::Schema {
                found: v.first().copied().unwrap_or(0),
            })
        }
        Some(_) => {}
        // A store of schema 1 had no identity either: say which it is.
        None if meta.get(STORE_ID_KEY)?.is_none() && has_data => {
            return Err(StoreError::Schema { found: 0 })
        }
        None => {}
    }
    let store_id = match meta.get(STORE_ID_KEY)? {
        None => None,
        Some(v) => Some(
            StoreId::try_from(v.as_ref()).map_err(|_| StoreError::Corrupt {
                detail: format!("sled meta store_id has {} bytes, not 16", v.len()),
            })?,
        ),
    };
    Ok(SledMeta {
        store_id,
        checkpoint_lsn: read_lsn(&meta, CHECKPOINT_LSN_KEY)?,
        applied_lsn: read_lsn(&meta, APPLIED_LSN_KEY)?,
        has_data,
    })
}

fn read_lsn(meta: &sled::Tree, key: &[u8]) -> Result<u64, StoreError> {
    match meta.get(key)? {
        None => Ok(0),
        Some(v) => <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                detail: format!(
                    "sled meta {} has {} bytes, not 8",
                    String::from_utf8_lossy(key),
                    v.len()
                ),
            }),
    }
}

/// Writes the schema version and the store's identity (recovery, before its checkpoint).
///
/// # Errors
/// [`StoreError::Sled`].
pub fn stamp(meta: &sled::Tree, store_id: &StoreId) -> Result<(), StoreError> {
    meta.insert(SCHEMA_KEY, &[SCHEMA_VERSION])?;
    meta.insert(STORE_ID_KEY, store_id)?;
    Ok(())
}

/// Records that sled holds every record through `lsn` once the next flush returns.
///
/// # Errors
/// [`StoreError::Sled`].
pub fn set_checkpoint_lsn(meta: &sled::Tree, lsn: u64) -> Result<(), StoreError> {
    meta.insert(CHECKPOINT_LSN_KEY, &lsn.to_be_bytes())?;
    Ok(())
}

/// Records the last record the applier put in sled.
///
/// # Errors
/// [`StoreError::Sled`].
pub fn set_applied_lsn(meta: &sled::Tree, lsn: u64) -> Result<(), StoreError> {
    meta.insert(APPLIED_LSN_KEY, &lsn.to_be_bytes())?;
    Ok(())
}
