//! Values by id (members, orders) for the engine: open addressing with linear
//! probing over slots that hold the id itself. The slot an id is looked up in is
//! known from its hash alone, so it can be loaded a few events before it is read
//! ([`IdIndex::prefetch`]), and a lookup reads one slot, not a group of control
//! bytes and then a bucket as a hash map does.

use std::hash::{BuildHasher, BuildHasherDefault};

use rustc_hash::FxHasher;

use crate::event::Id;

/// Values by id. At most three quarters full.
#[derive(Clone, Debug)]
pub(crate) struct IdIndex<V> {
    /// A power of two of slots (or none before the first id).
    slots: Vec<Option<(Id, V)>>,
    len: usize,
}

impl<V: Copy> IdIndex<V> {
    pub(crate) fn new() -> IdIndex<V> {
        IdIndex { slots: Vec::new(), len: 0 }
    }

    /// The slot `id` is first looked for in (the table is not empty).
    fn home(&self, id: &str) -> usize {
        // FxHash mixes a string best into the low bits.
        BuildHasherDefault::<FxHasher>::default().hash_one(id) as usize & (self.slots.len() - 1)
    }

    /// Asks the processor to start loading the slot `id` will be looked up in.
    pub(crate) fn prefetch(&self, id: &str) {
        if !self.slots.is_empty() {
            super::prefetch(&self.slots[self.home(id)]);
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<V> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(id);
        loop {
            match &self.slots[at] {
                None => return None,
                Some((key, value)) if key == id => return Some(*value),
                Some(_) => at = (at + 1) & mask,
            }
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Puts `value` under `id`, in place of any value there.
    pub(crate) fn insert(&mut self, id: Id, value: V) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(&id);
        loop {
            match &mut self.slots[at] {
                None => {
                    self.slots[at] = Some((id, value));
                    self.len += 1;
                    return;
                }
                Some((key, old)) if *key == id => {
                    *old = value;
                    return;
                }
                Some(_) => at = (at + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, std::iter::repeat_with(|| None).take(size).collect());
        self.len = 0;
        for (id, value) in old.into_iter().flatten() {
            self.insert(id, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The index answers as a map from id to the last value put under it, with
        /// ids that differ in one character, share long prefixes or are empty.
        #[test]
        fn index_answers_as_a_map(
            puts in prop::collection::vec(("(o-0{0,30}[0-9]{1,3}|[a-c]{0,2})", any::<u32>()), 0..400),
            looked_up in prop::collection::vec("(o-0{0,30}[0-9]{1,3}|[a-c]{0,2})", 0..50),
        ) {
            let mut index = IdIndex::<u32>::new();
            let mut model: HashMap<String, u32> = HashMap::new();
            for (id, value) in puts {
                prop_assert_eq!(index.contains(&id), model.contains_key(&id));
                index.insert(Id::from(id.as_str()), value);
                model.insert(id.clone(), value);
                prop_assert_eq!(index.get(&id), Some(value));
            }
            prop_assert_eq!(index.len, model.len());
            for id in model.keys().chain(looked_up.iter()) {
                prop_assert_eq!(index.get(id), model.get(id).copied());
            }
        }
    }
}
