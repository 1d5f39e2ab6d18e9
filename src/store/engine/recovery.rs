//! Recovery's verdict on a store directory: what the log and sled say, checked against each
//! other before anything is applied or served (DESIGN §6).
//!
//! A store is sound when every log segment is whole and of this store, LSNs run without a
//! gap from at or before sled's checkpoint to the end of the newest segment, the log reaches
//! at least as far as sled says it applied, and the only damage is a torn tail (bad bytes
//! at the end of the newest segment with no whole record anywhere after them: a record
//! whose write the crash cut short, so never acknowledged). Anything else is a [`Finding`]
//! naming the file, the offset and what was expected; `paykeep serve` and
//! `paykeep store check` refuse such a store with exit code 3, and
//! `paykeep serve --accept-data-loss` starts anyway, keeping every whole record of this
//! store's log and listing what it drops ([`Plan::dropped`]).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::store::meta::SledMeta;
use crate::store::wal::{self, Record, Scan, StoreId};

/// One thing wrong with a store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: PathBuf,
    /// Byte offset in `path`, where one applies.
    pub offset: Option<u64>,
    pub found: String,
    pub expected: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        write!(f, ": found {}; expected {}", self.found, self.expected)
    }
}

/// What recovery will do with a store directory.
#[derive(Debug, Default)]
pub struct Plan {
    /// Empty for a sound store.
    pub findings: Vec<Finding>,
    /// Whole records of this store's log, oldest first, to apply to sled.
    pub records: Vec<Record>,
    /// The store's identity: sled's, else the log's; `None` for a new store.
    pub store_id: Option<StoreId>,
    /// The highest LSN sled holds once `records` are applied.
    pub end_lsn: u64,
    /// Ids of the segments present (retired once their records are in sled).
    pub segments: Vec<u64>,
    /// What starting on this store loses, one line each (only when `findings` is not empty).
    pub dropped: Vec<String>,
    /// A torn tail recovery ignores: (segment path, offset).
    pub torn_tail: Option<(PathBuf, u64)>,
}

impl Plan {
    /// Whether the directory holds no store yet (no log, nothing in sled).
    pub fn is_new(&self) -> bool {
        self.store_id.is_none() && self.segments.is_empty() && self.findings.is_empty()
    }
}

/// Checks the log in `store_dir/wal` against `sled` (what sled's `meta` says, or the default
/// when sled is missing or could not be opened) and says what recovery will apply.
pub fn plan(store_dir: &Path, sled: &SledMeta) -> Plan {
    let mut plan = Plan::default();
    let wal_dir = store_dir.join(wal::DIR);
    let ids = match wal::list(store_dir) {
        Ok((ids, others)) => {
            for path in others.iter().filter(|p| wal::is_leftover(p) && p.is_dir()) {
                plan.findings.push(Finding {
                    path: path.clone(),
                    offset: None,
                    found: "a directory".to_owned(),
                    expected: "nothing, or a segment file a crash left half-created".to_owned(),
                });
            }
            ids
        }
        Err(error) => {
            plan.findings.push(Finding {
                path: wal_dir.clone(),
                offset: None,
                found: error.to_string(),
                expected: "a directory of log segments".to_owned(),
            });
            Vec::new()
        }
    };
    plan.segments.clone_from(&ids);
    let mut scans = Vec::new();
    for &id in &ids {
        let path = wal::segment_path(store_dir, id);
        match wal::scan(&path) {
            Ok(scan) if scan.header.segment != id => {
                plan.dropped
                    .push(format!("{}: the whole segment", path.display()));
                plan.findings.push(Finding {
                    path,
                    offset: Some(28),
                    found: format!("the header of segment {}", scan.header.segment),
                    expected: format!("segment {id}, as the file name says"),
                });
            }
            Ok(scan) => scans.push(scan),
            Err(found) => {
                plan.dropped
                    .push(format!("{}: the whole segment", path.display()));
                plan.findings.push(Finding {
                    path,
                    offset: Some(0),
                    found,
                    expected: "a paykeep log segment (format 2)".to_owned(),
                });
            }
        }
    }
    let log_id = scans.first().map(|s| s.header.store_id);
    plan.store_id = sled.store_id.or(log_id);
    check_identity(&mut plan, store_dir, sled, &scans);
    let ours: Vec<Scan> = scans
        .into_iter()
        .filter(|s| Some(s.header.store_id) == plan.store_id)
        .collect();
    check_segments(&mut plan, sled, &ours);
    plan.end_lsn = ours
        .iter()
        .flat_map(|s| s.records.iter().map(|r| r.lsn))
        .chain([sled.lsn()])
        .max()
        .unwrap_or(0);
    plan.records = ours.into_iter().flat_map(|s| s.records).collect();
    if plan.findings.is_empty() {
        plan.dropped.clear();
    }
    plan
}

/// Sled and the log name the same store, and neither is missing beside the other.
fn check_identity(plan: &mut Plan, store_dir: &Path, sled: &SledMeta, scans: &[Scan]) {
    let sled_path = store_dir.join("db");
    if sled.store_id.is_none() && sled.has_data {
        plan.findings.push(Finding {
            path: sled_path.clone(),
            offset: None,
            found: "sled data without a paykeep store identity".to_owned(),
            expected: "the sled half of a paykeep store (meta store_id)".to_owned(),
        });
    }
    for scan in scans {
        if Some(scan.header.store_id) != plan.store_id {
            plan.dropped.push(format!(
                "{}: {} records of store {}",
                scan.path.display(),
                scan.records.len(),
                hex::encode(scan.header.store_id)
            ));
            plan.findings.push(Finding {
                path: scan.path.clone(),
                offset: Some(0),
                found: format!(
                    "a log segment of store {}",
                    hex::encode(scan.header.store_id)
                ),
                expected: format!(
                    "store {} (as {})",
                    plan.store_id.map(hex::encode).unwrap_or_default(),
                    if sled.store_id.is_some() {
                        "sled's meta says"
                    } else {
                        "the oldest segment says"
                    }
                ),
            });
        }
    }
    let Some(first) = scans.first() else {
        if let Some(id) = sled.store_id {
            plan.findings.push(Finding {
                path: store_dir.join(wal::DIR),
                offset: None,
                found: "no log segment".to_owned(),
                expected: format!(
                    "the log of store {} from LSN {} or earlier",
                    hex::encode(id),
                    sled.checkpoint_lsn + 1
                ),
            });
        }
        return;
    };
    // A log whose only segment was created for a new store, with no record yet: a crash
    // before sled was stamped. Nothing was acknowledged, so nothing can be missing.
    let unborn = scans.len() == 1 && first.header.first_lsn == 1 && first.records.is_empty();
    if sled.store_id.is_none() && !sled.has_data && !unborn {
        plan.dropped.push(format!(
            "every record before LSN {} (in the missing sled)",
            first.header.first_lsn
        ));
        plan.findings.push(Finding {
            path: sled_path,
            offset: None,
            found: "no sled store (missing or empty)".to_owned(),
            expected: format!(
                "the sled half of store {}, which {} continues",
                hex::encode(first.header.store_id),
                first.path.display()
            ),
        });
    }
}

/// Each segment whole, in sequence, reaching back to sled's checkpoint and forward to what
/// sled applied; only the newest may end in a torn tail.
fn check_segments(plan: &mut Plan, sled: &SledMeta, scans: &[Scan]) {
    let newest = scans.len().saturating_sub(1);
    for (i, scan) in scans.iter().enumerate() {
        if scan.file_len < scan.header.capacity {
            plan.dropped.push(format!(
                "{}: whatever stood after byte {}",
                scan.path.display(),
                scan.file_len
            ));
            plan.findings.push(Finding {
                path: scan.path.clone(),
                offset: Some(scan.file_len),
                found: format!("the file ends after {} bytes", scan.file_len),
                expected: format!(
                    "at least the {} bytes it was preallocated to (a crash cannot shorten it)",
                    scan.header.capacity
                ),
            });
        }
        check_damage(plan, scan, i == newest);
        if let Some(previous) = i.checked_sub(1).map(|p| &scans[p]) {
            check_sequence(plan, previous, scan);
        }
    }
    let Some(first) = scans.first() else {
        return;
    };
    if first.header.first_lsn > sled.checkpoint_lsn + 1 && sled.store_id.is_some() {
        plan.dropped.push(format!(
            "records LSN {} to {} (neither in sled nor in the log)",
            sled.checkpoint_lsn + 1,
            first.header.first_lsn - 1
        ));
        plan.findings.push(Finding {
            path: first.path.clone(),
            offset: Some(0),
            found: format!("a log that starts at LSN {}", first.header.first_lsn),
            expected: format!(
                "a log from LSN {} or earlier (sled's checkpoint is at LSN {})",
                sled.checkpoint_lsn + 1,
                sled.checkpoint_lsn
            ),
        });
    }
    let last = &scans[newest];
    if last.end_lsn() < sled.lsn() {
        plan.dropped.push(format!(
            "records LSN {} to {} (applied to sled, gone from the log)",
            last.end_lsn() + 1,
            sled.lsn()
        ));
        plan.findings.push(Finding {
            path: last.path.clone(),
            offset: None,
            found: format!("a log that ends at LSN {}", last.end_lsn()),
            expected: format!(
                "records through LSN {} at least, which sled says it has",
                sled.lsn()
            ),
        });
    }
}

/// Damage in a segment: tolerated only as the newest segment's torn tail.
fn check_damage(plan: &mut Plan, scan: &Scan, newest: bool) {
    if newest && scan.damage_is_torn_tail() {
        if let Some(torn) = scan.damage.first() {
            plan.torn_tail = Some((scan.path.clone(), torn.offset));
        }
        return;
    }
    for damage in &scan.damage {
        let next = scan.records.iter().find(|r| r.offset > damage.offset);
        plan.dropped.push(format!(
            "{}: the bytes from offset {} to {}",
            scan.path.display(),
            damage.offset,
            next.map_or(scan.file_len, |r| r.offset)
        ));
        plan.findings.push(Finding {
            path: scan.path.clone(),
            offset: Some(damage.offset),
            found: damage.what.clone(),
            expected: match next {
                Some(record) => format!(
                    "a whole record, since a valid one (LSN {}) follows at offset {}",
                    record.lsn, record.offset
                ),
                None => "a whole record (only the newest segment may end torn)".to_owned(),
            },
        });
    }
}

/// Segment ids and LSNs continue from `previous` to `scan` without a gap.
fn check_sequence(plan: &mut Plan, previous: &Scan, scan: &Scan) {
    if scan.header.segment != previous.header.segment + 1 {
        plan.findings.push(Finding {
            path: scan.path.clone(),
            offset: Some(0),
            found: format!(
                "segment {} after segment {}",
                scan.header.segment, previous.header.segment
            ),
            expected: format!("segment {}", previous.header.segment + 1),
        });
    }
    if scan.header.first_lsn != previous.end_lsn() + 1 {
        plan.dropped.push(format!(
            "records LSN {} to {} (missing between segments)",
            previous.end_lsn() + 1,
            scan.header.first_lsn.saturating_sub(1)
        ));
        plan.findings.push(Finding {
            path: scan.path.clone(),
            offset: Some(0),
            found: format!("a segment that starts at LSN {}", scan.header.first_lsn),
            expected: format!(
                "LSN {}, after the last record of {}",
                previous.end_lsn() + 1,
                previous.path.display()
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: StoreId = [3; 16];

    /// A log of `records` one-record segments (every append seals its segment).
    fn log(records: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = wal::Wal::create(dir.path(), ID, 1, 1, 1).unwrap();
        for i in 0..records {
            wal.append(format!("record {i}").as_bytes(), true).unwrap();
        }
        dir
    }

    fn sled(checkpoint_lsn: u64, applied_lsn: u64) -> SledMeta {
        SledMeta {
            store_id: Some(ID),
            checkpoint_lsn,
            applied_lsn,
            has_data: true,
        }
    }

    fn found(plan: &Plan) -> String {
        plan.findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_whole_log_from_sleds_checkpoint_is_sound() {
        let dir = log(3);
        let plan = plan(dir.path(), &sled(0, 2));
        assert!(plan.findings.is_empty(), "{}", found(&plan));
        assert_eq!(
            plan.records.iter().map(|r| r.lsn).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!((plan.end_lsn, plan.segments.len()), (3, 4));
        assert!(plan.dropped.is_empty());
    }

    #[test]
    fn a_missing_middle_segment_is_a_gap() {
        let dir = log(3);
        std::fs::remove_file(wal::segment_path(dir.path(), 2)).unwrap();
        let plan = plan(dir.path(), &sled(0, 0));
        let said = found(&plan);
        assert!(said.contains("segment 3 after segment 1"), "{said}");
        assert!(said.contains("starts at LSN 3"), "{said}");
        assert!(
            plan.dropped.iter().any(|d| d.contains("LSN 2 to 2")),
            "{:?}",
            plan.dropped
        );
    }

    #[test]
    fn a_log_that_starts_after_sleds_checkpoint_is_refused() {
        let dir = log(3);
        std::fs::remove_file(wal::segment_path(dir.path(), 1)).unwrap();
        let said = found(&plan(dir.path(), &sled(0, 0)));
        assert!(said.contains("a log that starts at LSN 2"), "{said}");
        // Once sled's checkpoint holds LSN 1, the segment holding it is not needed.
        assert!(plan(dir.path(), &sled(1, 1)).findings.is_empty());
    }

    #[test]
    fn a_log_that_ends_before_what_sled_applied_is_refused() {
        let dir = log(3);
        let said = found(&plan(dir.path(), &sled(0, 5)));
        assert!(said.contains("ends at LSN 3"), "{said}");
        assert!(said.contains("through LSN 5"), "{said}");
    }

    #[test]
    fn identity_mismatches_are_refused_and_an_unborn_log_is_not() {
        let dir = log(1);
        let mut other = sled(0, 0);
        other.store_id = Some([4; 16]);
        assert!(found(&plan(dir.path(), &other)).contains("a log segment of store"));
        let said = found(&plan(dir.path(), &SledMeta::default()));
        assert!(said.contains("no sled store"), "{said}");
        let unborn = log(0);
        let plan = plan(unborn.path(), &SledMeta::default());
        assert!(plan.findings.is_empty(), "{}", found(&plan));
        assert_eq!(plan.store_id, Some(ID));
        let empty = tempfile::tempdir().unwrap();
        assert!(super::plan(empty.path(), &SledMeta::default()).is_new());
        assert!(found(&super::plan(empty.path(), &sled(4, 4))).contains("no log segment"));
    }

    #[test]
    fn a_directory_where_a_segment_is_created_is_refused_and_a_file_there_is_not() {
        let dir = log(2);
        let creating = dir
            .path()
            .join(wal::DIR)
            .join("00000000000000000009.log.creating");
        std::fs::write(&creating, b"half made").unwrap();
        assert!(plan(dir.path(), &sled(0, 0)).findings.is_empty());
        std::fs::remove_file(&creating).unwrap();
        std::fs::create_dir(&creating).unwrap();
        let said = found(&plan(dir.path(), &sled(0, 0)));
        assert!(said.contains(".log.creating: found a directory"), "{said}");
    }
}
