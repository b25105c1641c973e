//! A table keyed by hashes (of order ids), for the replay's serial steps: open
//! addressing with linear probing, so that the slot a key will be looked up in is
//! known in advance and can be prefetched a few lines ahead.
//!
//! Keys are 64-bit hashes, not the ids: two ids sharing a key share an entry. An
//! order id sharing a key can only stop the one pass (decisions D38), never mislead
//! it, and with 64 bits that stays rare.

/// Values by key (a hash, zero kept as one). At most three quarters full.
pub(super) struct HashIndex<V> {
    /// `(key, value)`, a zero key for an empty slot.
    slots: Vec<(u64, V)>,
    len: usize,
}

/// The key a hash is kept under: never zero, the mark of an empty slot.
fn key_of(hash: u64) -> u64 {
    hash.max(1)
}

impl<V: Copy + Default> HashIndex<V> {
    pub(super) fn new() -> HashIndex<V> {
        HashIndex { slots: vec![(0, V::default()); 16], len: 0 }
    }

    fn home(&self, key: u64) -> usize {
        // The FxHash of a string is best mixed in its low bits.
        key as usize & (self.slots.len() - 1)
    }

    /// Asks the processor to start loading the slot `hash` will be looked up in.
    pub(super) fn prefetch(&self, hash: u64) {
        crate::engine::prefetch(&self.slots[self.home(key_of(hash))]);
    }

    pub(super) fn get(&self, hash: u64) -> Option<V> {
        let key = key_of(hash);
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            match self.slots[at] {
                (found, value) if found == key => return Some(value),
                (0, _) => return None,
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The value under `hash`'s key, or `None` after putting `value` there.
    pub(super) fn get_or_insert(&mut self, hash: u64, value: V) -> Option<V> {
        self.get_or_insert_key(key_of(hash), value)
    }

    fn get_or_insert_key(&mut self, key: u64, value: V) -> Option<V> {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.rebuild(self.slots.len() * 2);
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            match self.slots[at] {
                (found, old) if found == key => return Some(old),
                (0, _) => {
                    self.slots[at] = (key, value);
                    self.len += 1;
                    return None;
                }
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn rebuild(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![(0, V::default()); size]);
        self.len = 0;
        for (key, value) in old.into_iter().filter(|(key, _)| *key != 0) {
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
        ) {
            let mut index = HashIndex::<u32>::new();
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
    }
}
