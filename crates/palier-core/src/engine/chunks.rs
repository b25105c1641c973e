//! The members of an engine, kept in place in chunks of a fixed size. A member's
//! address is then two steps from its index, through a table of chunks small enough
//! to stay in cache: a member can be prefetched from its index alone. (A vector of
//! boxes costs a load from a large table first, a cache miss of its own; one plain
//! vector would copy every member each time it grows.)

use std::ops::{Index, IndexMut};

/// Values by index, in chunks of `CHUNK` (the first grows up to it).
#[derive(Clone, Debug)]
pub(crate) struct Chunks<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

/// Values a chunk: some 110 KB of members.
const CHUNK: usize = 256;

impl<T> Chunks<T> {
    pub(crate) fn new() -> Chunks<T> {
        Chunks { chunks: Vec::new(), len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, value: T) {
        if self.len.is_multiple_of(CHUNK) {
            // The first chunk grows as a vector does: an engine of a few members
            // keeps room for a few.
            self.chunks.push(if self.chunks.is_empty() { Vec::new() } else { Vec::with_capacity(CHUNK) });
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(value);
            self.len += 1;
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }
}

impl<T> Index<usize> for Chunks<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

impl<T> IndexMut<usize> for Chunks<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunks[index / CHUNK][index % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Chunks answer as a vector of the values pushed, across chunk ends.
        #[test]
        fn chunks_answer_as_a_vector(values in prop::collection::vec(any::<u16>(), 0..3 * CHUNK)) {
            let mut chunks = Chunks::new();
            for value in &values {
                chunks.push(*value);
            }
            prop_assert_eq!(chunks.len(), values.len());
            prop_assert_eq!(chunks.iter().copied().collect::<Vec<_>>(), values.clone());
            for (index, value) in values.iter().enumerate() {
                prop_assert_eq!(chunks[index], *value);
                prop_assert_eq!(chunks.get(index), Some(value));
            }
            prop_assert_eq!(chunks.get(values.len()), None);
            for value in chunks.iter_mut() {
                *value = value.wrapping_add(1);
            }
            if !values.is_empty() {
                chunks[0] = 7;
            }
            let expected: Vec<u16> =
                values.iter().enumerate().map(|(i, v)| if i == 0 { 7 } else { v.wrapping_add(1) }).collect();
            prop_assert_eq!(chunks.iter().copied().collect::<Vec<_>>(), expected);
        }
    }
}
