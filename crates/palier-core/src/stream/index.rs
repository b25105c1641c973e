//! A table keyed by hashes (of event ids, of order ids), for the replay's serial
//! steps: open addressing with linear probing, so that the slot a key will be
//! looked up in is known in advance and can be prefetched a few lines ahead.
//!
//! Keys are hashes, not the ids: two ids sharing a key share an entry. The replay
//! confirms a repeated event id by reading its first line again, so event ids are
//! kept by 32 bits of their hash (a smaller table; a shared key costs one line read
//! again); an order id sharing a key can only stop the one pass (decisions D38),
//! never mislead it, so orders keep all 64 bits and that stays rare.

/// What a table is keyed by: made from a 64-bit hash, never zero (an empty slot).
pub(super) trait Key: Copy + Eq + Default {
    fn of(hash: u64) -> Self;
    /// The slot the key is first looked for in, before masking.
    fn home(self) -> usize;
}

impl Key for u64 {
    fn of(hash: u64) -> u64 {
        hash.max(1)
    }

    fn home(self) -> usize {
        // The FxHash of a string is best mixed in its low bits.
        self as usize
    }
}

impl Key for u32 {
    fn of(hash: u64) -> u32 {
        ((hash ^ (hash >> 32)) as u32).max(1)
    }

    fn home(self) -> usize {
        self as usize
    }
}

/// Values by key. At most three quarters full.
pub(super) struct HashIndex<V, K = u64> {
    /// `(key, value)`, the default (zero) key for an empty slot.
    slots: Vec<(K, V)>,
    len: usize,
}

impl<V: Copy + Default, K: Key> HashIndex<V, K> {
    pub(super) fn new() -> HashIndex<V, K> {
        HashIndex { slots: vec![(K::default(), V::default()); 16], len: 0 }
    }

    /// Makes room for `count` keys in all.
    pub(super) fn reserve(&mut self, count: usize) {
        let wanted = (count.saturating_mul(4) / 3 + 1).next_power_of_two();
        if wanted > self.slots.len() {
            self.rebuild(wanted);
        }
    }

    fn home(&self, key: K) -> usize {
        key.home() & (self.slots.len() - 1)
    }

    /// Asks the processor to start loading the slot `hash` will be looked up in.
    pub(super) fn prefetch(&self, hash: u64) {
        crate::engine::prefetch(&self.slots[self.home(K::of(hash))]);
    }

    pub(super) fn get(&self, hash: u64) -> Option<V> {
        let key = K::of(hash);
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            match self.slots[at] {
                (found, value) if found == key => return Some(value),
                (empty, _) if empty == K::default() => return None,
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The value under `hash`'s key, or `None` after putting `value` there.
    pub(super) fn get_or_insert(&mut self, hash: u64, value: V) -> Option<V> {
        self.get_or_insert_key(K::of(hash), value)
    }

    fn get_or_insert_key(&mut self, key: K, value: V) -> Option<V> {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.rebuild(self.slots.len() * 2);
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            match self.slots[at] {
                (found, old) if found == key => return Some(old),
                (empty, _) if empty == K::default() => {
                    self.slots[at] = (key, value);
                    self.len += 1;
                    return None;
                }
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn rebuild(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![(K::default(), V::default()); size]);
        self.len = 0;
        for (key, value) in old.into_iter().filter(|(key, _)| *key != K::default()) {
            self.get_or_insert_key(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The table answers as a map from hash (0 and 1 being one key) to the first value.
        #[test]
        fn index_answers_as_a_map(
            keys in prop::collection::vec(prop_oneof![0u64..4, any::<u64>(), (0u64..64).prop_map(|k| k << 58)], 0..400),
            reserved in 0usize..300,
        ) {
            let mut index = HashIndex::<u32>::new();
            index.reserve(reserved);
            let mut model: HashMap<u64, u32> = HashMap::new();
            for (position, hash) in keys.into_iter().enumerate() {
                let expected = model.get(&hash.max(1)).copied();
                prop_assert_eq!(index.get(hash), expected);
                prop_assert_eq!(index.get_or_insert(hash, position as u32), expected);
                model.entry(hash.max(1)).or_insert(position as u32);
                prop_assert_eq!(index.get(hash), model.get(&hash.max(1)).copied());
            }
            prop_assert_eq!(index.len, model.len());
        }

        /// Keyed by 32 bits, the table answers as a map from those bits (zero kept
        /// as one) to the first value; hashes differing only in how their halves
        /// combine share an entry.
        #[test]
        fn narrow_index_answers_as_a_map_of_its_keys(
            hashes in prop::collection::vec(prop_oneof![0u64..4, any::<u64>(), (0u64..8).prop_map(|k| k << 32 | k)], 0..400),
            reserved in 0usize..300,
        ) {
            let mut index = HashIndex::<u32, u32>::new();
            index.reserve(reserved);
            let mut model: HashMap<u32, u32> = HashMap::new();
            for (position, hash) in hashes.into_iter().enumerate() {
                let key = ((hash ^ (hash >> 32)) as u32).max(1);
                let expected = model.get(&key).copied();
                prop_assert_eq!(index.get(hash), expected);
                prop_assert_eq!(index.get_or_insert(hash, position as u32), expected);
                model.entry(key).or_insert(position as u32);
            }
            prop_assert_eq!(index.len, model.len());
        }
    }

    /// Two event ids the one-pass replay's tests use as sharing a first-use key.
    #[test]
    fn the_tests_pair_of_ids_shares_a_narrow_key() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = |id: &str| BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(id);
        assert_eq!(u32::of(hash("e-0027299")), u32::of(hash("e-0048676")));
        assert_ne!(hash("e-0027299"), hash("e-0048676"));
    }
}
