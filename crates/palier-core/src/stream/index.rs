//! The shard of each order's member, by a hash of the order id, for the replay's
//! serial step: open addressing with linear probing, so that the slot a key will be
//! looked up in is known in advance and can be prefetched a few lines ahead.
//!
//! A slot is 12 bytes: the 64-bit hash, in halves, and the shard (not 16: a `u64`
//! beside a `u32` pads the pair). Two ids sharing a hash share an entry: an order
//! id sharing one with an order placed in another shard can only stop the one pass
//! (decisions D38), never mislead it, and with 64 bits that stays rare.

/// Shards by key (a hash, zero kept as one). At most three quarters full.
pub(super) struct OrderShards {
    /// `[key's low half, key's high half, shard]`; a zero key for an empty slot.
    slots: Vec<[u32; 3]>,
    len: usize,
}

/// The key a hash is kept under: never zero, the mark of an empty slot.
fn key_of(hash: u64) -> u64 {
    hash.max(1)
}

fn key_in(slot: [u32; 3]) -> u64 {
    u64::from(slot[1]) << 32 | u64::from(slot[0])
}

impl OrderShards {
    pub(super) fn new() -> OrderShards {
        OrderShards { slots: vec![[0; 3]; 16], len: 0 }
    }

    fn home(&self, key: u64) -> usize {
        // The FxHash of a string is best mixed in its low bits.
        key as usize & (self.slots.len() - 1)
    }

    /// Asks the processor to start loading the slot `hash` will be looked up in.
    pub(super) fn prefetch(&self, hash: u64) {
        crate::engine::prefetch(&self.slots[self.home(key_of(hash))]);
    }

    /// The slot holding `key`, or the empty one it would be put in.
    fn slot_of(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        while ![0, key].contains(&key_in(self.slots[at])) {
            at = (at + 1) & mask;
        }
        at
    }

    pub(super) fn get(&self, hash: u64) -> Option<u32> {
        let slot = self.slots[self.slot_of(key_of(hash))];
        (key_in(slot) != 0).then_some(slot[2])
    }

    /// The shard under `hash`'s key, or `None` after putting `shard` there.
    pub(super) fn get_or_insert(&mut self, hash: u64, shard: u32) -> Option<u32> {
        let more = self.len + 1;
        if more * 4 > self.slots.len() * 3 {
            self.rebuild(self.slots.len() * 2);
        }
        let key = key_of(hash);
        let at = self.slot_of(key);
        if key_in(self.slots[at]) == key {
            return Some(self.slots[at][2]);
        }
        self.slots[at] = [key as u32, (key >> 32) as u32, shard];
        self.len = more;
        None
    }

    fn rebuild(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![[0; 3]; size]);
        let mask = size - 1;
        for slot in old.into_iter().filter(|slot| key_in(*slot) != 0) {
            let mut at = self.home(key_in(slot));
            while key_in(self.slots[at]) != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The table answers as a map from hash (0 and 1 being one key) to the
        /// first shard put under it.
        #[test]
        fn shards_answer_as_a_map(
            puts in prop::collection::vec(
                (prop_oneof![0u64..4, any::<u64>(), (0u64..64).prop_map(|k| k << 58), (0u64..4).prop_map(|k| k << 32 | 7)], any::<u32>()),
                0..400,
            ),
        ) {
            let mut index = OrderShards::new();
            let mut model: HashMap<u64, u32> = HashMap::new();
            for (hash, shard) in puts {
                let expected = model.get(&hash.max(1)).copied();
                prop_assert_eq!(index.get(hash), expected);
                prop_assert_eq!(index.get_or_insert(hash, shard), expected);
                model.entry(hash.max(1)).or_insert(shard);
                prop_assert_eq!(index.get(hash), model.get(&hash.max(1)).copied());
            }
            prop_assert_eq!(index.len, model.len());
        }
    }
}
