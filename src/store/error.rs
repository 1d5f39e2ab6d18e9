//! The store's errors.

use std::path::PathBuf;

use crate::store::engine::recovery;
use crate::store::SCHEMA_VERSION;

/// Errors of the store layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {detail}")]
    Sled { detail: String },
    #[error("file sync: {detail}")]
    Sync { detail: String },
    #[error("codec: {detail}")]
    Codec { detail: String },
    #[error("the store failed earlier and refuses writes until restart")]
    Failed,
    #[error("the committer has stopped")]
    Closed,
    #[error("store schema version {found} is not {SCHEMA_VERSION}, the only one this build reads (nothing is migrated: start on a new data directory)")]
    Schema { found: u8 },
    #[error("corrupt store: {detail}")]
    Corrupt { detail: String },
    #[error("the store cannot vouch for every acknowledged write (start with --accept-data-loss to keep what can be read):{}", findings.iter().map(|f| format!("\n  - {f}")).collect::<String>())]
    Damaged { findings: Vec<recovery::Finding> },
    #[error("{} holds no paykeep store", path.display())]
    NotAStore { path: PathBuf },
    #[error("{} is in use by another process (sled's lock is held)", path.display())]
    InUse { path: PathBuf },
}

impl StoreError {
    /// Whether the error says the store's files cannot be vouched for (damage, another
    /// schema, a record that does not decode): `paykeep` exits with code 3 on these.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Damaged { .. } | StoreError::Schema { .. } | StoreError::Corrupt { .. }
        )
    }
}
