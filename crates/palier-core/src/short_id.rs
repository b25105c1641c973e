//! An id kept in 16 bytes, where a `CompactString` takes 24: an order and each of
//! its lines keep one (some 12 million at 10M events, so some 100 MB). Up to 15
//! bytes are kept in place; a longer id is boxed.

use std::fmt;
use std::ops::Deref;

/// The length of an id kept in place: its 16 values leave the enum a spare byte
/// pattern to tell a boxed id by, so that [`ShortId`] needs no tag of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Length {
    L0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
}

const LENGTHS: [Length; INLINE + 1] = [
    Length::L0,
    Length::L1,
    Length::L2,
    Length::L3,
    Length::L4,
    Length::L5,
    Length::L6,
    Length::L7,
    Length::L8,
    Length::L9,
    Length::L10,
    Length::L11,
    Length::L12,
    Length::L13,
    Length::L14,
    Length::L15,
];

/// The longest id kept in place.
const INLINE: usize = 15;

/// An id (of an order, of a line) in 16 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ShortId(Kept);

#[derive(Clone, PartialEq, Eq)]
enum Kept {
    /// The length, then the bytes (zero past the length).
    Inline(Length, [u8; INLINE]),
    Boxed(Box<Box<str>>),
}

impl ShortId {
    /// The id as events and documents carry it.
    pub fn to_id(&self) -> crate::event::Id {
        self.as_str().into()
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Made from a `str` cut at its length: always UTF-8.
            Kept::Inline(length, bytes) => std::str::from_utf8(&bytes[..*length as usize]).unwrap_or_default(),
            Kept::Boxed(id) => id,
        }
    }
}

impl ShortId {
    /// `first` then `second`, as one id.
    pub fn joined(first: &str, second: &str) -> ShortId {
        match LENGTHS.get(first.len() + second.len()) {
            Some(length) => {
                let mut bytes = [0; INLINE];
                bytes[..first.len()].copy_from_slice(first.as_bytes());
                bytes[first.len()..first.len() + second.len()].copy_from_slice(second.as_bytes());
                ShortId(Kept::Inline(*length, bytes))
            }
            None => ShortId(Kept::Boxed(Box::new([first, second].concat().into()))),
        }
    }
}

impl From<&str> for ShortId {
    fn from(id: &str) -> ShortId {
        ShortId::joined(id, "")
    }
}

impl Deref for ShortId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for ShortId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_short_id_is_16_bytes() {
        assert_eq!(size_of::<ShortId>(), 16, "the point of the type");
    }

    proptest! {
        /// Any id comes back as it was, short or long, and two ids are equal
        /// exactly when their text is.
        #[test]
        fn a_short_id_gives_back_its_text(a in ".{0,24}", b in ".{0,24}") {
            let (kept_a, kept_b) = (ShortId::from(a.as_str()), ShortId::from(b.as_str()));
            prop_assert_eq!(kept_a.as_str(), a.as_str());
            prop_assert_eq!(format!("{kept_a:?}"), format!("{a:?}"));
            prop_assert_eq!(kept_a == kept_b, a == b);
            prop_assert!(kept_a == *a.as_str());
            let joined = ShortId::joined(&a, &b);
            prop_assert_eq!(joined.as_str(), format!("{a}{b}"));
        }
    }
}
