//! The members of an engine, kept in place in chunks of a fixed size. A member's
//! address is then two steps from its index, through a table of chunks small enough
//! to stay in cache: a member can be prefetched from its index alone. (A vector of
//! boxes costs a load from a large table first, a cache miss of its own; one plain
//! vector would copy every member each time it grows.)

use std::ops::{Index, IndexMut};

/// Values by index, in chunks of [`Chunks::CHUNK`] (the first grows up to it).
#[derive(Clone, Debug)]
pub(crate) struct Chunks<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

/// Bytes a chunk: 112 KiB, one of the allocation classes of mimalloc and jemalloc
/// (four a doubling), filled. Chunks of 256 members of 408 bytes (104 448 bytes)
/// were rounded up to it: filling it measured 11 MiB less at 10M events.
const CHUNK_BYTES: usize = 112 * 1024;

impl<T> Chunks<T> {
    /// Values a chunk: as many as `CHUNK_BYTES` holds (311 members of 368 bytes), at least one.
    const CHUNK: usize = match CHUNK_BYTES / if size_of::<T>() == 0 { 1 } else { size_of::<T>() } {
        0 => 1,
        fits => fits,
    };

    pub(crate) fn new() -> Chunks<T> {
        Chunks { chunks: Vec::new(), len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, value: T) {
        if self.len.is_multiple_of(Self::CHUNK) {
            // The first chunk grows as a vector does: an engine of a few members
            // keeps room for a few.
            self.chunks.push(if self.chunks.is_empty() { Vec::new() } else { Vec::with_capacity(Self::CHUNK) });
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(value);
            self.len += 1;
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / Self::CHUNK)?.get(index % Self::CHUNK)
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
        &self.chunks[index / Self::CHUNK][index % Self::CHUNK]
    }
}

impl<T> IndexMut<usize> for Chunks<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunks[index / Self::CHUNK][index % Self::CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A value of 2 KiB: 56 a chunk, so that a few hundred cross chunk ends.
    type Wide = (u16, [u8; 2046]);

    #[test]
    fn chunks_fill_their_allocation_class() {
        assert_eq!(Chunks::<Wide>::CHUNK, 56);
        assert_eq!(Chunks::<[u8; 408]>::CHUNK, 281);
        assert_eq!(Chunks::<[u8; 200_000]>::CHUNK, 1);
        assert_eq!(Chunks::<()>::CHUNK, CHUNK_BYTES);
    }

    proptest! {
        /// Chunks answer as a vector of the values pushed, across chunk ends.
        #[test]
        fn chunks_answer_as_a_vector(values in prop::collection::vec(any::<u16>(), 0..3 * Chunks::<Wide>::CHUNK)) {
            let mut chunks = Chunks::new();
            for value in &values {
                chunks.push((*value, [0u8; 2046]));
            }
            prop_assert_eq!(chunks.len(), values.len());
            prop_assert_eq!(chunks.iter().map(|w| w.0).collect::<Vec<_>>(), values.clone());
            for (index, value) in values.iter().enumerate() {
                prop_assert_eq!(chunks[index].0, *value);
                prop_assert_eq!(chunks.get(index).map(|w| w.0), Some(*value));
            }
            prop_assert!(chunks.get(values.len()).is_none());
            for value in chunks.iter_mut() {
                value.0 = value.0.wrapping_add(1);
            }
            if !values.is_empty() {
                chunks[0].0 = 7;
            }
            let expected: Vec<u16> =
                values.iter().enumerate().map(|(i, v)| if i == 0 { 7 } else { v.wrapping_add(1) }).collect();
            prop_assert_eq!(chunks.iter().map(|w| w.0).collect::<Vec<_>>(), expected);
        }
    }
}
