//! One store tree: a sled tree plus its memtable, the writes that are durable in the
//! write-ahead log but not yet applied to sled ([`super::applier`]).
//!
//! Every read looks at the memtable first and at sled second, so a reader sees each
//! acknowledged write whether or not the applier has reached it. Range reads merge the two
//! in key order. The applier applies a write to sled before it drops it from the memtable,
//! so a key is never missing from both.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::RwLock;

use sled::IVec;

use crate::store::engine::key_filter::{KeyFilter, BUILD_STOP_CHECK_KEYS};
use crate::store::tree_batch::Op;
use crate::store::StoreError;

/// sled's database handle, for the tables' declaration to open their trees with.
pub type Db = sled::Db;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled {
            detail: e.to_string(),
        }
    }
}

/// A memtable value: the epoch of the group commit that wrote it, and the value (`None`: the
/// key was removed).
type Staged = (u64, Option<IVec>);

/// A sled tree with the durable writes the applier has not reached yet, and optionally a
/// filter of the keys it holds ([`KeyFilter`]).
pub struct Tree {
    sled: sled::Tree,
    memtable: RwLock<BTreeMap<Vec<u8>, Staged>>,
    key_filter: Option<KeyFilter>,
}

impl Tree {
    /// `key_filter`: whether point reads of absent keys should be answered from a filter
    /// (for a tree read by random keys that are mostly new: built by
    /// [`super::key_filter::spawn_build`]).
    pub fn new(sled: sled::Tree, key_filter: bool) -> Tree {
        Tree {
            sled,
            memtable: RwLock::new(BTreeMap::new()),
            key_filter: key_filter.then(KeyFilter::default),
        }
    }

    /// Inserts every key sled holds into this tree's filter and marks it built; `Ok(false)`
    /// if `stop` was raised first (the filter then stays unbuilt). A tree without a filter
    /// has nothing to do.
    ///
    /// # Errors
    /// sled's I/O error; the filter stays unbuilt.
    pub fn fill_key_filter(&self, stop: &AtomicBool) -> sled::Result<bool> {
        let Some(filter) = &self.key_filter else {
            return Ok(true);
        };
        // Staged keys need no visit: staging inserted them (as sled's own writes do).
        for (n, key) in self.sled.iter().keys().enumerate() {
            if n % BUILD_STOP_CHECK_KEYS == 0 && stop.load(AtomicOrdering::Relaxed) {
                return Ok(false);
            }
            filter.insert(&key?);
        }
        filter.mark_built();
        Ok(true)
    }

    /// Whether this tree's filter is built (`None`: it has none).
    pub fn key_filter_built(&self) -> Option<bool> {
        self.key_filter.as_ref().map(KeyFilter::is_built)
    }

    /// Writes `key` to sled itself: sets it to `value`, or removes it for `None` (the
    /// applier and recovery; readers still see the memtable first).
    ///
    /// Plain `insert` and `remove`, never `apply_batch` or a transaction: either switches
    /// sled 0.34 for good into a mode in which every read and write in the process takes one
    /// global `RwLock` (`concurrency_control.rs`). Atomicity comes from the write-ahead log.
    ///
    /// Returns whether sled was written: a removal of a key sled does not hold is skipped
    /// after a read, which costs far less than sled's write path (the applier's pass often
    /// holds a key set and cleared again, e.g. a payment's `processing` entry).
    ///
    /// # Errors
    /// sled's I/O error.
    pub fn apply(&self, key: &[u8], value: Option<&[u8]>) -> sled::Result<bool> {
        match value {
            Some(v) => {
                // Recovery writes here without staging first.
                if let Some(filter) = &self.key_filter {
                    filter.insert(key);
                }
                self.sled.insert(key, v)?;
            }
            None if self.sled.contains_key(key)? => {
                self.sled.remove(key)?;
            }
            None => return Ok(false),
        }
        Ok(true)
    }

    /// Makes the writes of a durable group visible to readers (the committer, after the
    /// log sync). `ops` is in order: a later write of a key replaces an earlier one.
    pub fn stage(&self, epoch: u64, ops: &[Op]) {
        if let Some(filter) = &self.key_filter {
            // Before the memtable makes any of them visible.
            for op in ops.iter().filter(|op| op.value.is_some()) {
                filter.insert(&op.key);
            }
        }
        let mut memtable = self.memtable.write().unwrap_or_else(|e| e.into_inner());
        for op in ops {
            let value = op.value.as_deref().map(IVec::from);
            memtable.insert(op.key.clone(), (epoch, value));
        }
    }

    /// Drops `keys` from the memtable unless a group after `through_epoch` wrote them again
    /// (the applier, once sled holds every write through `through_epoch`).
    pub fn unstage<'a>(&self, through_epoch: u64, keys: impl Iterator<Item = &'a [u8]>) {
        let mut memtable = self.memtable.write().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if memtable
                .get(key)
                .is_some_and(|(epoch, _)| *epoch <= through_epoch)
            {
                memtable.remove(key);
            }
        }
    }

    /// Number of staged writes.
    #[cfg(test)]
    pub fn staged_len(&self) -> usize {
        self.memtable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The value of `key`: `None` at once if the key filter rules the key out, else the
    /// memtable's, else sled's.
    ///
    /// # Errors
    /// sled's I/O error.
    pub fn get(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        let key = key.as_ref();
        if self
            .key_filter
            .as_ref()
            .is_some_and(|f| !f.may_contain(key))
        {
            return Ok(None);
        }
        if let Some((_, value)) = self
            .memtable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Ok(value.clone());
        }
        self.sled.get(key)
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    /// sled's I/O error.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> sled::Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Keys and values in `range`, in key order.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Merged {
        let start = range.start_bound().map(|k| k.as_ref().to_vec());
        let end = range.end_bound().map(|k| k.as_ref().to_vec());
        self.merged(self.sled.range((start.clone(), end.clone())), start, end)
    }

    /// Keys and values whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Merged {
        let prefix = prefix.as_ref().to_vec();
        let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        self.merged(self.sled.scan_prefix(&prefix), Bound::Included(prefix), end)
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> Merged {
        self.merged(self.sled.iter(), Bound::Unbounded, Bound::Unbounded)
    }

    /// The greatest key and its value.
    ///
    /// # Errors
    /// sled's I/O error.
    pub fn last(&self) -> sled::Result<Option<(IVec, IVec)>> {
        self.greatest(Bound::Unbounded)
    }

    /// The greatest key at or below `key`, and its value.
    ///
    /// # Errors
    /// sled's I/O error.
    pub fn floor(&self, key: &[u8]) -> sled::Result<Option<(IVec, IVec)>> {
        self.greatest(Bound::Included(key))
    }

    /// The greatest key within `upper` and its value: the memtable's greatest staged value
    /// against sled's greatest key that the memtable does not remove or replace.
    fn greatest(&self, upper: Bound<&[u8]>) -> sled::Result<Option<(IVec, IVec)>> {
        let memtable = self.memtable.read().unwrap_or_else(|e| e.into_inner());
        let staged = memtable
            .range::<[u8], _>((Bound::Unbounded, upper))
            .rev()
            .find_map(|(k, (_, v))| v.clone().map(|v| (IVec::from(k.as_slice()), v)));
        let mut applied = None;
        for kv in self.sled.range::<&[u8], _>((Bound::Unbounded, upper)).rev() {
            let (k, v) = kv?;
            if !memtable.contains_key(k.as_ref()) {
                applied = Some((k, v));
                break;
            }
        }
        Ok(match (staged, applied) {
            (Some(s), Some(a)) => Some(if a.0 > s.0 { a } else { s }),
            (s, a) => s.or(a),
        })
    }

    /// Number of keys (walks the tree).
    #[cfg(test)]
    pub fn key_count(&self) -> usize {
        self.iter().count()
    }

    fn merged(&self, sled: sled::Iter, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Merged {
        let staged: Vec<(IVec, Option<IVec>)> = if is_empty_range(&start, &end) {
            Vec::new()
        } else {
            self.memtable
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .range::<[u8], _>((
                    start.as_ref().map(Vec::as_slice),
                    end.as_ref().map(Vec::as_slice),
                ))
                .map(|(k, (_, v))| (IVec::from(k.as_slice()), v.clone()))
                .collect()
        };
        Merged {
            sled: sled.peekable(),
            staged: staged.into_iter().peekable(),
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key,
/// the prefix is all 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether no key lies between the bounds (`BTreeMap::range` panics on such bounds).
fn is_empty_range(start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

/// Keys and values of sled merged with the memtable, in key order; a staged value replaces
/// sled's, a staged removal hides it.
pub struct Merged {
    sled: Peekable<sled::Iter>,
    staged: Peekable<std::vec::IntoIter<(IVec, Option<IVec>)>>,
}

impl Merged {
    /// Only the keys.
    pub fn keys(self) -> impl Iterator<Item = sled::Result<IVec>> {
        self.map(|kv| kv.map(|(k, _)| k))
    }

    /// Only the values.
    pub fn values(self) -> impl Iterator<Item = sled::Result<IVec>> {
        self.map(|kv| kv.map(|(_, v)| v))
    }
}

impl Iterator for Merged {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.sled.peek(), self.staged.peek()) {
                (None, None) => return None,
                (Some(Err(_)) | Some(Ok(_)), None) => Ordering::Less,
                (Some(Err(_)), Some(_)) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(Ok((applied, _))), Some((staged, _))) => applied.cmp(staged),
            };
            if order != Ordering::Greater {
                let applied = self.sled.next();
                if order == Ordering::Less {
                    return applied;
                }
            }
            // The staged write wins over sled's value of the same key.
            if let Some((key, Some(value))) = self.staged.next() {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Tree::new(db.open_tree("t").unwrap(), false)
    }

    fn put(key: &[u8], value: &[u8]) -> Op {
        Op {
            key: key.to_vec(),
            value: Some(value.to_vec()),
        }
    }

    fn remove(key: &[u8]) -> Op {
        Op {
            key: key.to_vec(),
            value: None,
        }
    }

    fn keys(m: Merged) -> Vec<Vec<u8>> {
        m.keys().map(|k| k.unwrap().to_vec()).collect()
    }

    #[test]
    fn staged_writes_replace_hide_and_add_to_sled() {
        let t = tree();
        for k in [b"a", b"c", b"e"] {
            t.apply(k, Some(b"sled")).unwrap();
        }
        t.stage(1, &[put(b"b", b"new"), put(b"c", b"new"), remove(b"e")]);
        assert_eq!(t.get(b"c").unwrap().unwrap().as_ref(), b"new");
        assert_eq!(
            t.get(b"e").unwrap(),
            None,
            "a staged removal hides sled's value"
        );
        assert_eq!(t.get(b"a").unwrap().unwrap().as_ref(), b"sled");
        assert!(t.contains_key(b"b").unwrap());
        let all: Vec<(Vec<u8>, Vec<u8>)> = t
            .iter()
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect();
        assert_eq!(
            all,
            vec![
                (b"a".to_vec(), b"sled".to_vec()),
                (b"b".to_vec(), b"new".to_vec()),
                (b"c".to_vec(), b"new".to_vec()),
            ]
        );
        assert_eq!(keys(t.range(b"b".to_vec()..b"e".to_vec())), [b"b", b"c"]);
        assert_eq!(t.last().unwrap().unwrap().0.as_ref(), b"c");
    }

    #[test]
    fn prefix_scans_see_staged_keys_and_empty_ranges_do_not_panic() {
        let t = tree();
        t.apply(b"p\0x", Some(b"")).unwrap();
        t.apply(b"q", Some(b"")).unwrap();
        t.stage(1, &[put(b"p\0a", b""), put(b"p\xff", b""), put(b"r", b"")]);
        assert_eq!(keys(t.scan_prefix(b"p")), [&b"p\0a"[..], b"p\0x", b"p\xff"]);
        assert!(keys(t.range(b"z".to_vec()..b"a".to_vec())).is_empty());
        assert_eq!(keys(t.scan_prefix([0xff_u8])).len(), 0);
    }

    #[test]
    fn unstage_keeps_a_key_written_again_by_a_later_group() {
        let t = tree();
        t.stage(1, &[put(b"k", b"one"), put(b"j", b"one")]);
        t.stage(2, &[put(b"k", b"two")]);
        t.apply(b"k", Some(b"one")).unwrap();
        t.apply(b"j", Some(b"one")).unwrap();
        t.unstage(1, [&b"k"[..], b"j"].into_iter());
        assert_eq!(t.staged_len(), 1);
        assert_eq!(t.get(b"k").unwrap().unwrap().as_ref(), b"two");
        assert_eq!(t.get(b"j").unwrap().unwrap().as_ref(), b"one");
    }

    #[test]
    fn a_key_filter_rules_out_only_keys_never_written() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let before = Tree::new(db.open_tree("t").unwrap(), true);
        before.apply(b"held at open", Some(b"v")).unwrap();
        drop(before);
        // A new instance over the same sled tree: its filter knows nothing yet.
        let t = Tree::new(db.open_tree("t").unwrap(), true);
        assert_eq!(t.key_filter_built(), Some(false));
        assert!(
            t.get(b"held at open").unwrap().is_some(),
            "unbuilt: sled decides"
        );
        t.stage(1, &[put(b"staged during the build", b"v")]);
        assert!(t.fill_key_filter(&AtomicBool::new(false)).unwrap());
        assert_eq!(t.key_filter_built(), Some(true));
        t.stage(2, &[put(b"staged", b"v")]);
        t.apply(b"applied", Some(b"v")).unwrap();
        for key in [
            &b"held at open"[..],
            b"staged during the build",
            b"staged",
            b"applied",
        ] {
            assert!(t.get(key).unwrap().is_some(), "{key:?}");
        }
        // A key in sled that never passed the filter stands for one never written: the
        // read is answered without sled.
        t.sled.insert(b"behind the filter's back", b"v").unwrap();
        assert_eq!(t.get(b"behind the filter's back").unwrap(), None);
        assert_eq!(tree().key_filter_built(), None);
    }

    #[test]
    fn a_stopped_build_leaves_the_filter_unbuilt() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = Tree::new(db.open_tree("t").unwrap(), true);
        t.sled.insert(b"k", b"v").unwrap();
        assert!(!t.fill_key_filter(&AtomicBool::new(true)).unwrap());
        assert_eq!(t.key_filter_built(), Some(false));
        assert!(t.get(b"k").unwrap().is_some());
    }
}
