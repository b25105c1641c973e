//! Values by id (members, orders) for the engine: open addressing with linear
//! probing over slots of 8 or 12 bytes, each 32 bits of the id's hash and the
//! value (a member's index; an order's member and place). The id
//! itself is not kept here: the value leads to the member or order that holds it,
//! and the caller checks it there ([`IdIndex::find`]) — or, on the hot path, takes
//! the first slot of the id's hash as a candidate ([`IdIndex::candidate`]) and
//! checks it once the member it names has been loaded anyway. The slot an id is
//! looked up in is known from its hash alone, so it can be loaded a few events
//! before it is read ([`IdIndex::prefetch`]).
//!
//! Keeping part of the hash rather than the id makes a slot a third or a quarter of
//! what it would be (32 bytes with a `CompactString`): some 200 MB less at 10M
//! events. An id sharing its 32 bits with another costs a second check (the first
//! candidate is not its own), never a wrong answer.

use std::hash::{BuildHasher, BuildHasherDefault};

use rustc_hash::FxHasher;

/// Values by the hash of their id. At most three quarters full.
#[derive(Clone, Debug)]
pub(crate) struct IdIndex<V> {
    /// A power of two of slots (or none before the first id): `(hash, value)`, a
    /// zero hash for an empty slot (an id whose hash is zero is kept as one).
    slots: Vec<(u32, V)>,
    len: usize,
}

/// The hash an id is kept under (its 64-bit hash's halves combined): never zero,
/// the mark of an empty slot.
fn hash(id: &str) -> u32 {
    let hash = BuildHasherDefault::<FxHasher>::default().hash_one(id);
    #[cfg(test)]
    let hash = tests::NARROW.with(|bits| bits.get().map_or(hash, |bits| hash & ((1 << bits) - 1)));
    ((hash ^ (hash >> 32)) as u32).max(1)
}

impl<V: Copy + Default> IdIndex<V> {
    pub(crate) fn new() -> IdIndex<V> {
        IdIndex { slots: Vec::new(), len: 0 }
    }

    /// The slot a hash is first looked for in (the table is not empty).
    fn home(&self, hash: u32) -> usize {
        // FxHash mixes a string best into the low bits.
        hash as usize & (self.slots.len() - 1)
    }

    /// Asks the processor to start loading the slot `id` will be looked up in.
    pub(crate) fn prefetch(&self, id: &str) {
        if !self.slots.is_empty() {
            super::prefetch(&self.slots[self.home(hash(id))]);
        }
    }

    /// The first value kept under `id`'s hash: `id`'s own, unless another id
    /// shares its 64-bit hash. To be checked against the id before use.
    pub(crate) fn candidate(&self, id: &str) -> Option<V> {
        self.find(id, |_| true)
    }

    /// The value of `id`, told apart from any other id of the same hash by
    /// `holds`: whether a value leads to `id`.
    pub(crate) fn find(&self, id: &str, holds: impl Fn(V) -> bool) -> Option<V> {
        if self.slots.is_empty() {
            return None;
        }
        let hash = hash(id);
        let mask = self.slots.len() - 1;
        let mut at = self.home(hash);
        loop {
            match self.slots[at] {
                (0, _) => return None,
                (kept, value) if kept == hash && holds(value) => return Some(value),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Puts `value` under `id`, which the index does not hold yet.
    pub(crate) fn insert(&mut self, id: &str, value: V) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(hash(id), value);
    }

    fn place(&mut self, hash: u32, value: V) {
        let mask = self.slots.len() - 1;
        let mut at = self.home(hash);
        while self.slots[at].0 != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = (hash, value);
        self.len += 1;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![(0, V::default()); size]);
        self.len = 0;
        for (hash, value) in old {
            if hash != 0 {
                self.place(hash, value);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    thread_local! {
        /// In tests, the bits of an id's hash this thread's indexes keep (all when
        /// `None`): few bits give many ids of one hash, which real 64-bit hashes
        /// give too rarely to be tested.
        pub(crate) static NARROW: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// An index of positions in `ids`, checked against it as the engine checks
    /// against its members and orders.
    fn find(index: &IdIndex<u32>, ids: &[String], id: &str) -> Option<u32> {
        index.find(id, |at| ids[at as usize] == id)
    }

    proptest! {
        /// The index answers as a map from id to its value, with ids that differ in
        /// one character, share long prefixes or are empty.
        #[test]
        fn index_answers_as_a_map(
            puts in prop::collection::vec("(o-0{0,30}[0-9]{1,3}|[a-c]{0,2})", 0..400),
            looked_up in prop::collection::vec("(o-0{0,30}[0-9]{1,3}|[a-c]{0,2})", 0..50),
        ) {
            let mut index = IdIndex::<u32>::new();
            let mut ids: Vec<String> = Vec::new();
            let mut model: HashMap<String, u32> = HashMap::new();
            for id in puts {
                prop_assert_eq!(find(&index, &ids, &id), model.get(&id).copied());
                if model.contains_key(&id) {
                    continue;
                }
                let at = ids.len() as u32;
                index.insert(&id, at);
                ids.push(id.clone());
                model.insert(id.clone(), at);
                prop_assert_eq!(find(&index, &ids, &id), Some(at));
                prop_assert_eq!(index.candidate(&id), Some(at));
            }
            prop_assert_eq!(index.len, model.len());
            for id in model.keys().chain(looked_up.iter()) {
                prop_assert_eq!(find(&index, &ids, id), model.get(id).copied());
            }
        }
    }

    /// Ids of one hash (forced here by keeping two ids under one): each is found
    /// by its own check, the candidate is the first put, and an id not put is not
    /// found.
    #[test]
    fn ids_of_one_hash_are_told_apart_by_the_check() {
        let mut index = IdIndex::<u32>::new();
        let ids = ["o-1".to_string(), "o-2".to_string()];
        // Both kept under the hash of "o-1", as two ids of one hash would be.
        index.insert("o-1", 0);
        index.insert("o-1", 1);
        assert_eq!(index.find("o-1", |at| ids[at as usize] == "o-1"), Some(0));
        assert_eq!(index.find("o-1", |at| ids[at as usize] == "o-2"), Some(1));
        assert_eq!(index.find("o-1", |_| false), None);
        assert_eq!(index.candidate("o-1"), Some(0));
        assert_eq!(index.candidate("o-3"), None);
    }
}
