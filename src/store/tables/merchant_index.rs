//! A merchant's lists, newest first (`GET /v1/events`, `/v1/payments`, `/v1/refunds`),
//! kept as one sled key per merchant per group commit, not one per item: a create pays a
//! fraction of a write for being listed (a group commits many creates), which keeps it
//! within its budget of sled writes (BENCHMARKS.md). Trees: `merchant_events`,
//! `merchant_payments`, `merchant_refunds` (docs/durability.md, "Layout").
//!
//! Key: merchant id ++ `\0` ++ a position (u128, big-endian): the newest item time of the
//! key's chunk (Unix ms, 64 bits) ++ the group's LSN (48 bits) ++ the chunk's number in
//! the group (16 bits). Value: the chunk's [`Item`]s, oldest first. A group's items of one
//! merchant are cut into chunks whose times lie within [`SPREAD_MS`] of each other; almost
//! always that is one chunk, as a group's items were made within its commit's latency.
//!
//! An item of time `t` is in a chunk whose position's time lies in `[t, t + SPREAD_MS]`, so
//! finding an item from its time and id ([`locate`]) reads only that window's chunks:
//! exact, however long its group took to commit. For the same reason a time window
//! (`created[gte]`, `created[lt]`) bounds which keys a list reads.
//!
//! A list's order is by position, then by item (time, sequence number, id) within a chunk; lists walk it
//! backwards. A key is never rewritten except to take items out (the events' retention), so
//! a cursor keeps its place while items are added: a page never repeats or skips an item
//! that existed when the first page was read. New items may land anywhere after their
//! time, which a walk already past it does not see.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use crate::domain::write_set::MerchantList;
use crate::store::engine::tree::{Merged, Tree};
use crate::store::engine::tree_batch::TreeBatch;
use crate::store::{codec, Store, StoreError};

/// Widest time span of one chunk (ms). Items made further apart in one group go to
/// separate keys, so a lookup reads at most this window of a merchant's keys.
pub const SPREAD_MS: u64 = 1_000;

/// One listed item: its time (Unix ms: a payment's or refund's creation, an event id's
/// ULID time), a number its table keeps with it (an event's sequence number, which orders
/// events of one millisecond; 0 for payments and refunds), and its id. Items sort in that
/// order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Item {
    pub time_ms: u64,
    pub seq: u64,
    pub id: String,
}

/// A key's items, oldest first.
type Chunk = Vec<Item>;

/// Where an item stands in its merchant's list: its chunk's key, and the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    key: Vec<u8>,
    pub item: Item,
}

/// The time bounds of a list, Unix ms: `created[gte]` and `created[lt]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub gte_ms: Option<u64>,
    pub lt_ms: Option<u64>,
}

impl Window {
    /// Whether an item of time `time_ms` lies within the bounds.
    pub fn holds(&self, time_ms: u64) -> bool {
        self.gte_ms.is_none_or(|gte| time_ms >= gte) && self.lt_ms.is_none_or(|lt| time_ms < lt)
    }
}

fn merchant_prefix(merchant_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(merchant_id.len() + 17);
    key.extend_from_slice(merchant_id.as_bytes());
    key.push(0);
    key
}

/// The position of a chunk: its newest time, the group's LSN, its number in the group.
fn position_of(time_ms: u64, lsn: u64, chunk: u16) -> u128 {
    (u128::from(time_ms) << 64) | (u128::from(lsn & 0xffff_ffff_ffff) << 16) | u128::from(chunk)
}

/// The first position at time `time_ms`.
fn at_time(time_ms: u64) -> u128 {
    u128::from(time_ms) << 64
}

fn time_of(position: u128) -> u64 {
    u64::try_from(position >> 64).unwrap_or(u64::MAX)
}

/// The position of a key under `prefix`.
fn position(key: &[u8], prefix: &[u8]) -> Option<u128> {
    let rest: [u8; 16] = key.strip_prefix(prefix)?.try_into().ok()?;
    Some(u128::from_be_bytes(rest))
}

fn key_at(prefix: &[u8], position: u128) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// What one group commit does to one list tree: the merchants' new items, and the chunks
/// the retention sweep edited (read once, edited here, written at the end).
#[derive(Default)]
pub(crate) struct ListBatch {
    added: BTreeMap<String, Vec<Item>>,
    edited: HashMap<Vec<u8>, Chunk>,
}

impl ListBatch {
    /// Lists `item` under `merchant_id`.
    pub fn put(&mut self, merchant_id: &str, item: Item) {
        match self.added.get_mut(merchant_id) {
            Some(items) => items.push(item),
            None => {
                self.added.insert(merchant_id.to_owned(), vec![item]);
            }
        }
    }

    /// Takes the item `id` of time `time_ms` out of its chunk in `tree`, if it is listed.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn remove(
        &mut self,
        tree: &Tree,
        merchant_id: &str,
        time_ms: u64,
        id: &str,
    ) -> Result<(), StoreError> {
        let Some(cursor) = locate(tree, merchant_id, time_ms, id)? else {
            return Ok(());
        };
        let chunk = match self.edited.remove(&cursor.key) {
            Some(chunk) => chunk,
            None => match tree.get(&cursor.key)? {
                Some(bytes) => codec::decode(&bytes)?,
                None => return Ok(()),
            },
        };
        let kept: Chunk = chunk.into_iter().filter(|item| item.id != id).collect();
        self.edited.insert(cursor.key, kept);
        Ok(())
    }

    /// The batch's writes into `batch` (the tree's batch of a group of log record `lsn`):
    /// the edited chunks (removed once empty), then one key per chunk of new items.
    ///
    /// # Errors
    /// [`StoreError`] on a codec failure.
    pub fn into_writes(self, batch: &mut TreeBatch, lsn: u64) -> Result<(), StoreError> {
        for (key, chunk) in self.edited {
            if chunk.is_empty() {
                batch.remove(key);
            } else {
                batch.insert(key, codec::encode(&chunk)?);
            }
        }
        for (merchant_id, mut items) in self.added {
            items.sort();
            let prefix = merchant_prefix(&merchant_id);
            let mut number: u16 = 0;
            let mut rest = items.as_slice();
            while let Some(first) = rest.first() {
                let end = rest
                    .iter()
                    .position(|item| item.time_ms - first.time_ms > SPREAD_MS)
                    .unwrap_or(rest.len());
                let (chunk, after) = rest.split_at(end);
                let newest = chunk.last().map_or(first.time_ms, |item| item.time_ms);
                let key = key_at(&prefix, position_of(newest, lsn, number));
                batch.insert(key, codec::encode(&chunk)?);
                number = number.saturating_add(1);
                rest = after;
            }
        }
        Ok(())
    }
}

/// Where the item `id` of time `time_ms` stands in `merchant_id`'s list in `tree`; `None`
/// when it is not listed there (unknown, or another merchant's).
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
pub(crate) fn locate(
    tree: &Tree,
    merchant_id: &str,
    time_ms: u64,
    id: &str,
) -> Result<Option<Cursor>, StoreError> {
    let prefix = merchant_prefix(merchant_id);
    let until = at_time(time_ms.saturating_add(SPREAD_MS + 1));
    for kv in tree.range(key_at(&prefix, at_time(time_ms))..key_at(&prefix, until)) {
        let (key, value) = kv?;
        let chunk: Chunk = codec::decode(&value)?;
        if let Some(item) = chunk.into_iter().find(|item| item.id == id) {
            return Ok(Some(Cursor {
                key: key.to_vec(),
                item,
            }));
        }
    }
    Ok(None)
}

/// `merchant_id`'s items in `tree` within `window`, newest first, strictly older than
/// `after` when given. Reads one key at a time, as the caller takes items.
pub(crate) fn older<'a>(
    tree: &'a Tree,
    merchant_id: &str,
    after: Option<&Cursor>,
    window: Window,
) -> Walk<'a> {
    let prefix = merchant_prefix(merchant_id);
    let probe = match after {
        Some(cursor) => position(&cursor.key, &prefix),
        // An item older than `lt` is in a chunk whose time is below `lt + SPREAD_MS`.
        None => Some(window.lt_ms.map_or(u128::MAX, |lt| {
            at_time(lt.saturating_add(SPREAD_MS)).saturating_sub(1)
        })),
    };
    Walk {
        keys: Keys::Down { tree, probe },
        prefix,
        cursor: after.cloned(),
        window,
        chunk: Vec::new(),
    }
}

/// `merchant_id`'s items in `tree` within `window` that are newer than `before`, oldest
/// first (nearest the cursor first). Reads one key at a time, as the caller takes items.
pub(crate) fn newer<'a>(
    tree: &'a Tree,
    merchant_id: &str,
    before: &Cursor,
    window: Window,
) -> Walk<'a> {
    Walk {
        keys: Keys::Up(Box::new(tree.range(before.key.clone()..))),
        prefix: merchant_prefix(merchant_id),
        cursor: Some(before.clone()),
        window,
        chunk: Vec::new(),
    }
}

/// How a walk reaches its next key: down by `floor` (sled's merged iterator only runs
/// forward) from `probe`, or up through a forward range.
enum Keys<'a> {
    Down { tree: &'a Tree, probe: Option<u128> },
    Up(Box<Merged>),
    Done,
}

/// The walk of [`older`] (down) or [`newer`] (up): one merchant's items, a chunk at a time.
pub(crate) struct Walk<'a> {
    keys: Keys<'a>,
    prefix: Vec<u8>,
    /// Items at or beyond it in its own chunk are not the walk's.
    cursor: Option<Cursor>,
    window: Window,
    /// Items of the chunk being read, not yet taken, the next one last.
    chunk: Chunk,
}

impl Walk<'_> {
    /// The next key of the walk and its chunk, or `None` at its end (the merchant's keys,
    /// or the window, run out).
    fn next_key(&mut self) -> Result<Option<(Vec<u8>, Chunk)>, StoreError> {
        let found = match &mut self.keys {
            Keys::Down { tree, probe } => match probe {
                Some(at) => tree.floor(&key_at(&self.prefix, *at))?,
                None => None,
            },
            Keys::Up(keys) => keys.next().transpose()?,
            Keys::Done => None,
        };
        let Some((key, value)) = found else {
            return Ok(None);
        };
        let Some(at) = position(&key, &self.prefix) else {
            return Ok(None);
        };
        let time = time_of(at);
        let past_window = match &mut self.keys {
            Keys::Down { probe, .. } => {
                *probe = at.checked_sub(1);
                // Every item of this chunk and of older ones is at or before its time.
                self.window.gte_ms.is_some_and(|gte| time < gte)
            }
            // Chunks at or past `lt + SPREAD_MS` hold only items at or after `lt`.
            _ => self
                .window
                .lt_ms
                .is_some_and(|lt| time >= lt.saturating_add(SPREAD_MS)),
        };
        if past_window {
            return Ok(None);
        }
        Ok(Some((key.to_vec(), codec::decode(&value)?)))
    }

    /// Reads the next chunk into `self.chunk`; `false` at the walk's end.
    fn read_chunk(&mut self) -> Result<bool, StoreError> {
        let Some((key, mut chunk)) = self.next_key()? else {
            self.keys = Keys::Done;
            return Ok(false);
        };
        let down = matches!(self.keys, Keys::Down { .. });
        if let Some(cursor) = self.cursor.as_ref().filter(|c| c.key == key) {
            chunk.retain(|item| {
                if down {
                    *item < cursor.item
                } else {
                    *item > cursor.item
                }
            });
        }
        if !down {
            chunk.reverse();
        }
        self.chunk = chunk;
        Ok(true)
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<Item, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.chunk.pop() {
                if self.window.holds(item.time_ms) {
                    return Some(Ok(item));
                }
                continue;
            }
            match self.read_chunk() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => {
                    self.keys = Keys::Done;
                    return Some(Err(error));
                }
            }
        }
    }
}

/// Which page of a list: from the newest, older than a cursor (`starting_after`), or the
/// page just newer than a cursor (`ending_before`); `C`: how the cursor is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListPage<C = Cursor> {
    First,
    After(C),
    Before(C),
}

/// Most items one page examines before it answers (bounded work for a filter that
/// matches little); past that it answers what it found, with `has_more: true` and the last
/// examined item as the place to continue from ([`Page::next`]).
pub const ITEMS_SCANNED_MAX: usize = 10_000;

/// One page of a list.
#[derive(Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The picked items, in list order (newest first).
    pub data: Vec<T>,
    /// When more items follow in the direction the page was read: the id of the last item
    /// this page accounted for, the cursor of that direction for the next page. It is the
    /// last picked item's id when the page filled, and the last examined item's when the
    /// page stopped at [`ITEMS_SCANNED_MAX`] (it may then be an item the filter left out,
    /// or `data` may be empty).
    pub next: Option<String>,
}

impl Store {
    /// The tree of `list`: `merchant_events`, `merchant_payments`, `merchant_refunds`.
    pub(crate) fn list_tree(&self, list: MerchantList) -> &Tree {
        match list {
            MerchantList::Events => &self.trees.merchant_events,
            MerchantList::Payments => &self.trees.merchant_payments,
            MerchantList::Refunds => &self.trees.merchant_refunds,
        }
    }

    /// Where the item `id` of time `time_ms` stands in `merchant_id`'s `list`; `None` when
    /// it is not there (unknown, or another merchant's).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn list_cursor(
        &self,
        list: MerchantList,
        merchant_id: &str,
        time_ms: u64,
        id: &str,
    ) -> Result<Option<Cursor>, StoreError> {
        locate(self.list_tree(list), merchant_id, time_ms, id)
    }

    /// One page of `merchant_id`'s `list` within `window`, in list order (newest first):
    /// up to `limit` items that `pick` turns into a `T` (`None`: filtered out), and where
    /// to continue when more follow. At most [`ITEMS_SCANNED_MAX`] items are examined.
    ///
    /// # Errors
    /// `pick`'s error, or a [`StoreError`] on an I/O or codec failure.
    pub fn list_page<T, E: From<StoreError>>(
        &self,
        list: MerchantList,
        merchant_id: &str,
        page: &ListPage,
        window: Window,
        limit: usize,
        mut pick: impl FnMut(&Item) -> Result<Option<T>, E>,
    ) -> Result<Page<T>, E> {
        let tree = self.list_tree(list);
        let items = match page {
            ListPage::First => older(tree, merchant_id, None, window),
            ListPage::After(cursor) => older(tree, merchant_id, Some(cursor), window),
            ListPage::Before(cursor) => newer(tree, merchant_id, cursor, window),
        };
        let mut data = Vec::new();
        let mut next = None;
        // The last item accounted for: picked, or examined and left out.
        let mut last: Option<String> = None;
        for (scanned, item) in items.enumerate() {
            if scanned >= ITEMS_SCANNED_MAX {
                next = last;
                break;
            }
            let item = item?;
            if let Some(found) = pick(&item)? {
                if data.len() == limit {
                    next = last;
                    break;
                }
                data.push(found);
            }
            last = Some(item.id);
        }
        if matches!(page, ListPage::Before(_)) {
            data.reverse();
        }
        Ok(Page { data, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::test_support::open;

    fn item(time_ms: u64, id: &str) -> Item {
        Item {
            time_ms,
            seq: 0,
            id: id.to_owned(),
        }
    }

    fn commit(tree: &Tree, lsn: u64, items: &[(&str, Item)]) {
        let mut list = ListBatch::default();
        for (merchant, item) in items {
            list.put(merchant, item.clone());
        }
        let mut batch = TreeBatch::default();
        list.into_writes(&mut batch, lsn).unwrap();
        batch.apply(tree).unwrap();
    }

    /// A page of merchant `m`'s payments list, unbounded in time, of what `pick` keeps.
    fn payments_page(
        store: &Store,
        page: ListPage,
        limit: usize,
        pick: impl Fn(&Item) -> Option<String>,
    ) -> Page<String> {
        store
            .list_page(
                MerchantList::Payments,
                "m",
                &page,
                Window::default(),
                limit,
                |item| Ok::<_, StoreError>(pick(item)),
            )
            .unwrap()
    }

    fn ids(items: impl Iterator<Item = Result<Item, StoreError>>) -> Vec<String> {
        items.map(|item| item.unwrap().id).collect()
    }

    /// Groups whose times overlap, a group that spans more than a chunk, two merchants,
    /// and a merchant whose id is a prefix of another's.
    #[test]
    fn walks_are_newest_first_per_merchant_and_cursors_keep_their_place() {
        let (_dir, store) = open();
        let t = &store.trees.merchant_payments;
        commit(t, 1, &[("m", item(10_000, "a")), ("m", item(10_005, "b"))]);
        commit(
            t,
            2,
            &[
                ("m", item(10_003, "c")),
                ("m2", item(10_004, "x")),
                // Made long before its group committed: a chunk of its own.
                ("m", item(5_000, "d")),
            ],
        );
        commit(t, 3, &[("m", item(20_000, "e"))]);
        let all = ids(older(t, "m", None, Window::default()));
        // By chunk: `c` was made before `b` but committed after it, in a later group.
        assert_eq!(all, ["e", "b", "a", "c", "d"]);
        for (n, id) in all.iter().enumerate() {
            let time = match id.as_str() {
                "a" => 10_000,
                "b" => 10_005,
                "c" => 10_003,
                "d" => 5_000,
                _ => 20_000,
            };
            let cursor = locate(t, "m", time, id).unwrap().unwrap();
            assert_eq!(
                ids(older(t, "m", Some(&cursor), Window::default())),
                all[n + 1..]
            );
            let mut before = ids(newer(t, "m", &cursor, Window::default()));
            before.reverse();
            assert_eq!(before, all[..n]);
        }
        assert_eq!(locate(t, "m", 10_004, "x").unwrap(), None);
        assert_eq!(locate(t, "m", 10_000, "nope").unwrap(), None);
        assert_eq!(ids(older(t, "m2", None, Window::default())), ["x"]);

        let window = Window {
            gte_ms: Some(10_003),
            lt_ms: Some(10_005),
        };
        assert_eq!(ids(older(t, "m", None, window)), ["c"]);
        let e = locate(t, "m", 20_000, "e").unwrap().unwrap();
        assert_eq!(ids(older(t, "m", Some(&e), window)), ["c"]);
        let d = locate(t, "m", 5_000, "d").unwrap().unwrap();
        let page = |page: ListPage, limit| {
            payments_page(&store, page, limit, |item| Some(item.id.clone()))
        };
        let paged = |ids: &[&str], next: Option<&str>| Page {
            data: ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            next: next.map(str::to_owned),
        };
        // Read newer-wards, a page's last accounted item is its newest: data[0].
        assert_eq!(
            page(ListPage::Before(d.clone()), 2),
            paged(&["a", "c"], Some("a"))
        );
        assert_eq!(
            page(ListPage::Before(d.clone()), 4),
            paged(&["e", "b", "a", "c"], None)
        );
        assert_eq!(
            page(ListPage::After(e.clone()), 2),
            paged(&["b", "a"], Some("a"))
        );
        assert_eq!(page(ListPage::After(d), 2), paged(&[], None));
        assert_eq!(
            page(ListPage::First, 5),
            paged(&["e", "b", "a", "c", "d"], None)
        );
    }

    /// A filter that matches only past the scan bound: the first page is empty, yet it
    /// names where to continue, and following it reaches the match.
    #[test]
    fn a_page_stopped_at_the_scan_bound_names_the_last_examined_item() {
        let (_dir, store) = open();
        let t = &store.trees.merchant_payments;
        let total = ITEMS_SCANNED_MAX + 5;
        let items: Vec<(&str, Item)> = (0..total)
            .map(|n| ("m", item(1_000 + n as u64, &format!("p{n:05}"))))
            .collect();
        commit(t, 1, &items);
        // Newest first: p10004 is examined first, p00000 last; only p00001 matches.
        let read = |page: ListPage| {
            payments_page(&store, page, 10, |item| {
                (item.id == "p00001").then(|| item.id.clone())
            })
        };
        let first = read(ListPage::First);
        let last_examined = format!("p{:05}", total - ITEMS_SCANNED_MAX);
        assert_eq!(
            first,
            Page {
                data: Vec::new(),
                next: Some(last_examined.clone())
            }
        );
        let at = locate(
            t,
            "m",
            1_000 + (total - ITEMS_SCANNED_MAX) as u64,
            &last_examined,
        )
        .unwrap()
        .unwrap();
        let second = read(ListPage::After(at));
        assert_eq!(
            second,
            Page {
                data: vec!["p00001".to_owned()],
                next: None
            }
        );
    }

    #[test]
    fn removal_takes_an_item_out_and_drops_an_empty_chunk() {
        let (_dir, store) = open();
        let t = &store.trees.merchant_refunds;
        commit(t, 1, &[("m", item(1_000, "a")), ("m", item(1_001, "b"))]);
        commit(t, 2, &[("m", item(2_000, "c"))]);
        let mut list = ListBatch::default();
        list.remove(t, "m", 1_000, "a").unwrap();
        list.remove(t, "m", 2_000, "c").unwrap();
        list.remove(t, "m", 2_000, "unknown").unwrap();
        let mut batch = TreeBatch::default();
        list.into_writes(&mut batch, 3).unwrap();
        batch.apply(t).unwrap();
        assert_eq!(ids(older(t, "m", None, Window::default())), ["b"]);
        assert_eq!(t.key_count(), 1);
    }
}
