//! Item ordering inside a queue: the discipline key and the heap the router keeps per queue
//! class, also usable on its own as [`ItemQueue`].

use super::model::{Discipline, WorkItem};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A discipline's sort key (lower first).
pub(crate) type ItemKey = [i64; 3];

/// The sort key of `item` (at `priority`, which a plan step may have changed) under `d`.
pub(crate) fn discipline_key(d: &Discipline, item: &WorkItem, priority: i32) -> ItemKey {
    discipline_key_at(d, item, priority, item.effective_since().timestamp_millis())
}

/// [`discipline_key`] with `item.effective_since()` already in milliseconds (`since`).
#[inline(always)]
pub(crate) fn discipline_key_at(d: &Discipline, item: &WorkItem, priority: i32, since: i64) -> ItemKey {
    let p = -i64::from(priority);
    match d {
        Discipline::PriorityThenAge => [p, since, 0],
        Discipline::DueTime => [item.due.map_or(i64::MAX, |d| d.timestamp_millis()), p, since],
        Discipline::Lifo => [p, since.saturating_neg(), 0],
        Discipline::Scored { seconds_per_priority } => {
            [since.saturating_sub(i64::from(priority).saturating_mul(i64::from(*seconds_per_priority) * 1000)), 0, 0]
        }
        Discipline::Buckets(terms) => {
            let bucket = terms.iter().position(|t| t.matches_item(item)).unwrap_or(terms.len());
            [bucket as i64, p, since]
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<T> {
    pub key: ItemKey,
    pub seq: u64,
    pub payload: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.seq == o.seq
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Entry<T> {
    /// Reversed: `BinaryHeap` is a max-heap, we want the lowest key on top.
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.cmp(&self.key).then(o.seq.cmp(&self.seq))
    }
}

/// A min-heap of keyed entries with lazy deletion: entries whose item has moved on stay until
/// they reach the top (or a compaction) and are dropped there. Entries added in a block wait
/// unordered until someone looks at the order, so a class whose items all move on before
/// anyone asks (a queue nobody can serve, relaxing) is never ordered at all.
#[derive(Debug)]
pub(crate) struct KeyedHeap<T> {
    heap: BinaryHeap<Entry<T>>,
    /// Entries added by [`append`](KeyedHeap::append), not in `heap` yet.
    unordered: Vec<Entry<T>>,
    live: usize,
}

impl<T> Default for KeyedHeap<T> {
    fn default() -> Self {
        KeyedHeap { heap: BinaryHeap::new(), unordered: Vec::new(), live: 0 }
    }
}

impl<T: Copy> KeyedHeap<T> {
    pub fn push(&mut self, key: ItemKey, seq: u64, payload: T) {
        self.heap.push(Entry { key, seq, payload });
        self.live += 1;
    }

    /// Adds live entries in one block, leaving `entries` empty; they are ordered when the order
    /// is first asked for. An empty heap takes the list as it is (no copy) and gives back in
    /// `entries` the larger of its own allocations.
    pub fn append(&mut self, entries: &mut Vec<Entry<T>>) {
        self.live += entries.len();
        if self.heap.is_empty() && self.unordered.is_empty() {
            std::mem::swap(&mut self.unordered, entries);
            if entries.capacity() < self.heap.capacity() {
                *entries = std::mem::take(&mut self.heap).into_vec();
            }
        } else {
            self.unordered.append(entries);
        }
    }

    /// Orders the entries added in blocks.
    fn settle(&mut self) {
        if self.unordered.is_empty() {
            return;
        }
        if self.heap.is_empty() {
            self.heap = BinaryHeap::from(std::mem::take(&mut self.unordered));
        } else {
            self.heap.extend(self.unordered.drain(..));
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Drops stale entries from the top and returns the best live one.
    pub fn peek_live(&mut self, mut is_live: impl FnMut(&Entry<T>) -> bool) -> Option<Entry<T>> {
        self.settle();
        while let Some(top) = self.heap.peek() {
            if is_live(top) {
                return Some(*top);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the best live entry.
    pub fn pop_live(&mut self, mut is_live: impl FnMut(&Entry<T>) -> bool) -> Option<Entry<T>> {
        self.settle();
        while let Some(top) = self.heap.pop() {
            if is_live(&top) {
                self.live = self.live.saturating_sub(1);
                return Some(top);
            }
        }
        None
    }

    /// Records that `n` live entries went stale (their items left); empties the heap when no
    /// entry is live. Compaction is the caller's, with [`maybe_compact`](Self::maybe_compact)
    /// (a batch compacts once, at its end).
    pub fn note_removed(&mut self, n: usize) {
        self.live = self.live.saturating_sub(n);
        if self.live == 0 {
            // Every entry is stale: nothing to check.
            self.heap.clear();
            self.unordered.clear();
        }
    }

    /// Compacts when stale entries outnumber live ones four to one.
    pub fn maybe_compact(&mut self, is_live: impl FnMut(&Entry<T>) -> bool) {
        let len = self.heap.len() + self.unordered.len();
        if len > 64 && len > 4 * self.live + 64 {
            self.compact(is_live);
        }
    }

    /// Drops every stale entry, in place (the allocation is kept for the entries to come).
    pub fn compact(&mut self, mut is_live: impl FnMut(&Entry<T>) -> bool) {
        self.heap.retain(|e| is_live(e));
        self.unordered.retain(|e| is_live(e));
        self.live = self.heap.len() + self.unordered.len();
    }

    /// The best `limit` live entries, best first, without removing them.
    pub fn best_live(&mut self, limit: usize, mut is_live: impl FnMut(&Entry<T>) -> bool) -> Vec<Entry<T>> {
        self.settle();
        let mut taken = Vec::new();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(top) = self.heap.pop() else { break };
            if is_live(&top) {
                out.push(top);
                taken.push(top);
            }
        }
        for e in taken {
            self.heap.push(e);
        }
        out
    }

    /// Every entry (live or not), unordered.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<T>> {
        self.heap.iter().chain(&self.unordered)
    }
}

/// A queue of work items in [`Discipline`] order — the structure the router keeps its waiting
/// items in, usable on its own (a host's own backlog view, a simulation).
///
/// ```
/// use touchpoint::routing::{Discipline, ItemQueue, WorkItem, WorkItemId};
/// use touchpoint::model::ChannelKind;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
/// let mut q = ItemQueue::new(Discipline::PriorityThenAge);
/// q.push(&WorkItem::new(WorkItemId::from_u128(1), ChannelKind::Email, t0));
/// q.push(&WorkItem::new(WorkItemId::from_u128(2), ChannelKind::Email, t0 + TimeDelta::seconds(5)).with_priority(1));
/// q.push(&WorkItem::new(WorkItemId::from_u128(3), ChannelKind::Email, t0 - TimeDelta::seconds(5)));
/// assert_eq!(q.pop(), Some(WorkItemId::from_u128(2))); // higher priority first
/// assert_eq!(q.pop(), Some(WorkItemId::from_u128(3))); // then the oldest
/// assert_eq!(q.pop(), Some(WorkItemId::from_u128(1)));
/// assert_eq!(q.pop(), None);
/// ```
#[derive(Debug)]
pub struct ItemQueue {
    discipline: Discipline,
    heap: KeyedHeap<super::WorkItemId>,
    seq: u64,
}

impl ItemQueue {
    /// An empty queue.
    pub fn new(discipline: Discipline) -> Self {
        ItemQueue { discipline, heap: KeyedHeap::default(), seq: 0 }
    }
    /// Adds an item (at its own priority).
    pub fn push(&mut self, item: &WorkItem) {
        let key = discipline_key(&self.discipline, item, item.priority);
        self.seq += 1;
        self.heap.push(key, self.seq, item.id);
    }
    /// Removes and returns the first item.
    pub fn pop(&mut self) -> Option<super::WorkItemId> {
        self.heap.pop_live(|_| true).map(|e| e.payload)
    }
    /// The first item.
    pub fn peek(&mut self) -> Option<super::WorkItemId> {
        self.heap.peek_live(|_| true).map(|e| e.payload)
    }
    /// Items in the queue.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.heap.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: i64, seq: u64) -> Entry<u32> {
        Entry { key: [p, 0, 0], seq, payload: seq as u32 }
    }

    /// Entries added in blocks (kept unordered until asked) and one by one come out in key
    /// order together; iteration, counting out and compaction see both.
    #[test]
    fn blocks_and_pushes_come_out_in_key_order() {
        let mut h = KeyedHeap::default();
        let mut block = vec![entry(5, 1), entry(1, 2), entry(3, 3)];
        h.append(&mut block);
        assert!(block.is_empty());
        h.push([2, 0, 0], 4, 4);
        let mut block = vec![entry(0, 5), entry(4, 6)];
        h.append(&mut block);
        assert_eq!(h.len(), 6);
        assert_eq!(h.iter().count(), 6);
        // Entry 6 went stale: compaction drops it from the unordered part too.
        h.compact(|e| e.seq != 6);
        assert_eq!((h.len(), h.iter().count()), (5, 5));
        let best: Vec<u64> = h.best_live(2, |_| true).iter().map(|e| e.seq).collect();
        assert_eq!(best, [5, 2]);
        let mut order = Vec::new();
        while let Some(e) = h.pop_live(|_| true) {
            order.push(e.seq);
        }
        assert_eq!(order, [5, 2, 4, 3, 1]);
        // A block appended to a heap that has entries merges with them.
        h.push([9, 0, 0], 7, 7);
        let mut block = vec![entry(8, 8)];
        h.append(&mut block);
        assert_eq!(h.peek_live(|_| true).map(|e| e.seq), Some(8));
        h.note_removed(2);
        assert_eq!((h.len(), h.iter().count()), (0, 0));
    }
}
