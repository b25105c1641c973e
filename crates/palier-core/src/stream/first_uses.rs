//! The first applied use of each event id, for repeated ids (decisions D7): a
//! repeat with the same body changes nothing, one with another body is refused
//! naming the first line.
//!
//! A slot is 8 bytes: 32 bits of the id's hash and the number of the line that first
//! used it. Neither the id nor where its line starts is kept. Where a line starts is
//! known from a few marks (the offset of one line in every group of
//! [`MARK_EVERY`] line numbers), and the line is read again, and its id compared,
//! whenever a slot's key matches: for a repeat, or for another id of the same key
//! (some thousands in 10M events). An id is never taken for another: only the
//! line's own id decides. 20-byte slots (key, offset, length, line) took 335 MB at
//! 10M events; these take 134 MB, and the marks 5 MB.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;

use super::LineSource;
use crate::event::sniff_id;

/// Line numbers per mark: a line is found again by reading at most this many lines
/// from its group's mark.
const MARK_EVERY: u64 = 16;

/// Where an id was first used: its line's number and bytes.
pub(super) struct Found {
    pub line: u64,
    pub bytes: Option<Vec<u8>>,
}

/// First uses of event ids by 32 bits of their hash. At most three quarters full.
pub(super) struct FirstUses {
    /// `key << 32 | line number`; zero for an empty slot (a key is never zero).
    slots: Vec<u64>,
    len: usize,
    /// `(line number, offset)` of the first line seen in each group of line
    /// numbers, in order.
    marks: Vec<(u64, u64)>,
    /// Ids first used past line `u32::MAX` (some 4 billion lines), by id.
    far: HashMap<String, u64, FxBuildHasher>,
}

/// The key an id's hash is kept under: never zero.
fn key_of(hash: u64) -> u32 {
    ((hash ^ (hash >> 32)) as u32).max(1)
}

impl FirstUses {
    pub(super) fn new() -> FirstUses {
        FirstUses { slots: vec![0; 16], len: 0, marks: Vec::new(), far: HashMap::default() }
    }

    /// Makes room for `count` ids in all. The slots are not written here: they are
    /// fresh zeroed memory, touched as ids arrive.
    pub(super) fn reserve(&mut self, count: usize) {
        let wanted = (count.saturating_mul(4) / 3 + 1).next_power_of_two();
        if wanted > self.slots.len() {
            self.rebuild(wanted);
        }
    }

    fn home(&self, key: u32) -> usize {
        key as usize & (self.slots.len() - 1)
    }

    /// Asks the processor to start loading the slot `hash` will be looked up in.
    pub(super) fn prefetch(&self, hash: u64) {
        crate::engine::prefetch(&self.slots[self.home(key_of(hash))]);
    }

    /// Notes where the line numbered `number` starts. Lines are noted in order.
    pub(super) fn saw_line(&mut self, number: u64, offset: u64) {
        if self.marks.last().is_none_or(|(last, _)| number / MARK_EVERY != last / MARK_EVERY) {
            self.marks.push((number, offset));
        }
    }

    /// The first use of `id` (whose hash is `hash`), or `None` after recording the
    /// line numbered `line` as it. Lines are read again through `source`, up to
    /// `end`, the offset of the line being settled (every first use lies before it).
    pub(super) fn first_use(
        &mut self,
        id: &str,
        hash: u64,
        line: u64,
        end: u64,
        source: &LineSource<'_>,
    ) -> Option<Found> {
        if let Some(first) = self.far.get(id) {
            return Some(Found { line: *first, bytes: self.read_line(*first, end, source) });
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.rebuild(self.slots.len() * 2);
        }
        let key = key_of(hash);
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            match self.slots[at] {
                0 => break,
                slot if (slot >> 32) as u32 == key => {
                    let first = slot & u64::from(u32::MAX);
                    let bytes = self.read_line(first, end, source);
                    let first_id = bytes.as_deref().and_then(|b| std::str::from_utf8(b).ok()).and_then(sniff_id);
                    if first_id.as_deref() == Some(id) {
                        return Some(Found { line: first, bytes });
                    }
                }
                _ => {}
            }
            at = (at + 1) & mask;
        }
        match u32::try_from(line) {
            Ok(number) => {
                self.slots[at] = u64::from(key) << 32 | u64::from(number);
                self.len += 1;
            }
            Err(_) => {
                self.far.insert(id.to_owned(), line);
            }
        }
        None
    }

    /// The bytes of the line numbered `number` (without its line feed), read from
    /// its group's mark; `None` if it cannot be read before `end`.
    fn read_line(&self, number: u64, end: u64, source: &LineSource<'_>) -> Option<Vec<u8>> {
        let mark = self.marks.partition_point(|(first, _)| *first <= number).checked_sub(1)?;
        let (mut at_number, mut offset) = self.marks[mark];
        let mut block = 4096_usize;
        let mut line = Vec::new();
        while offset < end {
            let length = usize::try_from(end - offset).unwrap_or(usize::MAX).min(block);
            let bytes = source(offset, length)?;
            let mut rest = &bytes[..];
            while let Some(feed) = memchr::memchr(b'\n', rest) {
                if at_number == number {
                    line.extend_from_slice(&rest[..feed]);
                    return Some(line);
                }
                at_number += 1;
                rest = &rest[feed + 1..];
            }
            if at_number == number {
                line.extend_from_slice(rest);
            }
            offset += length as u64;
            block = block.saturating_mul(2);
        }
        // A first use is a whole line before `end`: one ending there has no feed read.
        (at_number == number && !line.is_empty()).then_some(line)
    }

    fn rebuild(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        let mask = size - 1;
        for slot in old.into_iter().filter(|slot| *slot != 0) {
            let mut at = self.home((slot >> 32) as u32);
            while self.slots[at] != 0 {
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

    /// An input of `ids` (one line each, with blank lines where `blank` says), and
    /// each line's number and offset.
    fn input(ids: &[u16], blank: &[bool]) -> (Vec<u8>, Vec<(String, u64, u64)>) {
        let mut bytes = Vec::new();
        let mut lines = Vec::new();
        let mut number = 0;
        for (index, id) in ids.iter().enumerate() {
            if blank.get(index).copied().unwrap_or(false) {
                bytes.extend_from_slice(b"  \n");
                number += 1;
            }
            number += 1;
            let pad = "x".repeat(usize::from(*id) * 37 % 5000);
            let id = format!("e-{id}");
            lines.push((id.clone(), number, bytes.len() as u64));
            bytes.extend_from_slice(format!("{{\"id\":\"{id}\",\"pad\":\"{pad}\"}}\n").as_bytes());
        }
        (bytes, lines)
    }

    proptest! {
        /// The table answers as a map from id to the line it was first used on, and
        /// gives that line's bytes, even when every id has one of four hashes.
        #[test]
        fn first_uses_answer_as_a_map(
            ids in prop::collection::vec(0u16..200, 0..300),
            blank in prop::collection::vec(any::<bool>(), 0..300),
            hashes in prop::sample::select(vec![4u64, u64::MAX]),
            reserved in 0usize..300,
        ) {
            let (bytes, lines) = input(&ids, &blank);
            let source = crate::replay::bytes_at(&bytes);
            let mut table = FirstUses::new();
            table.reserve(reserved);
            let mut model: HashMap<String, u64> = HashMap::new();
            for (id, number, offset) in &lines {
                table.saw_line(*number, *offset);
                let hash = crate::stream::id_hash(id) % hashes;
                let found = table.first_use(id, hash, *number, *offset, &source);
                match model.get(id) {
                    Some(first) => {
                        let found = found.expect("a repeat finds its first use");
                        prop_assert_eq!(found.line, *first);
                        let expected = lines.iter().find(|(_, n, _)| n == first).map(|(_, _, o)| *o).unwrap_or_default();
                        let end = bytes[expected as usize..].iter().position(|b| *b == b'\n').unwrap_or_default();
                        prop_assert_eq!(found.bytes.as_deref(), Some(&bytes[expected as usize..expected as usize + end]));
                    }
                    None => {
                        prop_assert!(found.is_none());
                        model.insert(id.clone(), *number);
                    }
                }
            }
            prop_assert_eq!(table.len, model.len());
        }
    }

    /// Two event ids the one pass's tests use as sharing a key.
    #[test]
    fn the_tests_pair_of_ids_shares_a_key() {
        let hash = crate::stream::id_hash;
        assert_eq!(key_of(hash("e-0027299")), key_of(hash("e-0048676")));
        assert_ne!(hash("e-0027299"), hash("e-0048676"));
    }

    #[test]
    fn a_first_use_past_four_billion_lines_is_kept_by_id() {
        let bytes = b"{\"id\":\"e-1\"}\n{\"id\":\"e-1\"}\n".to_vec();
        let source = crate::replay::bytes_at(&bytes);
        let mut table = FirstUses::new();
        let far = u64::from(u32::MAX) + 1;
        table.saw_line(far, 0);
        table.saw_line(far + 1, 13);
        assert!(table.first_use("e-1", 7, far, 0, &source).is_none());
        let found = table.first_use("e-1", 7, far + 1, 13, &source).expect("found by id");
        assert_eq!((found.line, found.bytes.as_deref()), (far, Some(&b"{\"id\":\"e-1\"}"[..])));
        assert_eq!(table.len, 0);
    }
}
