//! A reader for the usual shape of an event line, written for speed.
//!
//! Nearly every line a replay reads is a plain JSON object: known keys, strings
//! without escapes, small whole numbers, `true` and `false`, and no backslash or
//! control character anywhere. [`read`] reads exactly that shape straight into a
//! [`RawEvent`], borrowing every string from the line. On anything else (a
//! backslash, a tab or another control character, `null`, a number with a sign, a
//! fraction or an exponent, a key it does not know, a key given twice, a value of
//! another type, malformed JSON, a line of 4 KiB or more) it gives up and returns
//! `None`, and the caller reads the line with serde, which also explains what is
//! wrong with it.
//!
//! The line is first looked over sixteen bytes at a time (eight where SSE2 is not
//! at hand) for the places of its quotes: with no backslash in the line, each
//! string runs from one quote to the next, so a string is then read in a few
//! instructions, whatever its length.
//!
//! The one rule: when [`read`] returns `Some`, it is what serde would have read.
//! The tests below check that on every line of the examples and scenarios and on
//! random variations of them.

use std::borrow::Cow;

use super::{RawEvent, RawLine, RawLineFields, RawPayment};

/// Reads the event of `text` into `raw` (fresh), when it has the usual shape; false
/// sends the line to serde (`raw` is then left partly filled).
pub(super) fn read<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> bool {
    let mut quotes = [0; QUOTE_WORDS];
    if !find_quotes(text.as_bytes(), &mut quotes) {
        return false;
    }
    let mut reader = Reader { text, at: 0, quotes: &quotes };
    let read = reader.object(|reader, key| event_field(reader, raw, key));
    reader.skip_space();
    read.is_some() && reader.at == text.len()
}

fn event_field<'a>(reader: &mut Reader<'a, '_>, raw: &mut RawEvent<'a>, key: &str) -> Option<()> {
    let slot = match key {
        "id" => &mut raw.id,
        "type" => &mut raw.kind,
        "at" => &mut raw.at,
        "program" => &mut raw.program,
        "member" => &mut raw.member,
        "country" => &mut raw.country,
        "birth_date" => &mut raw.birth_date,
        "order" => &mut raw.order,
        "currency" => &mut raw.currency,
        "channel" => &mut raw.channel,
        "delivery" => &mut raw.delivery,
        "duties" => &mut raw.duties,
        "hold" => &mut raw.hold,
        "expires_at" => &mut raw.expires_at,
        "store_credit" => &mut raw.store_credit,
        "code" => &mut raw.code,
        "promotion" => &mut raw.promotion,
        "ledger" => &mut raw.ledger,
        "amount" => &mut raw.amount,
        "note" => &mut raw.note,
        "sale" => &mut raw.sale,
        "line" => &mut raw.line,
        "birthday" => &mut raw.birthday,
        "name" => &mut raw.name,
        "email" => &mut raw.email,
        "source" => &mut raw.source,
        "text_version" => &mut raw.text_version,
        "benefit" => &mut raw.benefit,
        "staff" => return fill(&mut raw.staff, reader.boolean()?),
        "guardian_consent" => return fill(&mut raw.guardian_consent, reader.boolean()?),
        "granted" => return fill(&mut raw.granted, reader.boolean()?),
        "points" => return fill(&mut raw.points, reader.integer()?),
        "codes" => return fill(&mut raw.codes, reader.strings()?),
        "lines" => return fill(&mut raw.lines, reader.array(Reader::order_line)?),
        "items" => return fill(&mut raw.items, reader.array(Reader::line_fields)?),
        "payments" => return fill(&mut raw.payments, reader.array(Reader::payment)?),
        _ => return None,
    };
    fill(slot, reader.string()?)
}

fn line_field<'a>(reader: &mut Reader<'a, '_>, raw: &mut RawLineFields<'a>, key: &str) -> Option<()> {
    let slot = match key {
        "line" => &mut raw.line,
        "sku" => &mut raw.sku,
        "brand" => &mut raw.brand,
        "category" => &mut raw.category,
        "price" => &mut raw.price,
        "discount" => &mut raw.discount,
        "tax" => &mut raw.tax,
        "size" => &mut raw.size,
        "quantity" => return fill(&mut raw.quantity, reader.integer()?),
        "on_sale" => return fill(&mut raw.on_sale, reader.boolean()?),
        "available" => return fill(&mut raw.available, reader.boolean()?),
        "badges" => return fill(&mut raw.badges, reader.strings()?),
        _ => return None,
    };
    fill(slot, reader.string()?)
}

/// Sets a field read for the first time. A key given twice is left to serde, which
/// refuses it; `null` never reaches here, so a filled slot means a repeated key.
fn fill<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// Words of the quote map: lines shorter than 4 KiB are read here.
const QUOTE_WORDS: usize = 64;

/// Marks in `quotes` (bit `i % 64` of word `i / 64`) each byte `i` of `line` that
/// is a quote. False when the line holds a backslash or a control character, or is
/// longer than the map: the line is then left to serde.
fn find_quotes(line: &[u8], quotes: &mut [u64; QUOTE_WORDS]) -> bool {
    if line.len() >= QUOTE_WORDS * 64 {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86-64 itself: every x86-64 processor has it.
    return unsafe { find_quotes_sse2(line, quotes) };
    #[cfg(not(target_arch = "x86_64"))]
    find_quotes_swar(line, quotes)
}

/// [`find_quotes`] sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn find_quotes_sse2(line: &[u8], quotes: &mut [u64; QUOTE_WORDS]) -> bool {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x, _mm_set1_epi8,
    };
    let mut refused = 0;
    let mut chunks = line.chunks_exact(16);
    // The last few bytes, padded with spaces (neither quote, backslash nor control).
    let mut last = [b' '; 16];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    for (index, chunk) in chunks.by_ref().chain([&last[..]]).enumerate() {
        let (low, high) = chunk.split_at(8);
        let bytes = _mm_set_epi64x(
            i64::from_le_bytes(high.try_into().unwrap_or_default()),
            i64::from_le_bytes(low.try_into().unwrap_or_default()),
        );
        let [quote, backslash] = [b'"', b'\\'].map(|byte| _mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte as i8)));
        let control = _mm_cmpeq_epi8(_mm_min_epu8(bytes, _mm_set1_epi8(0x1f)), bytes);
        refused |= _mm_movemask_epi8(_mm_or_si128(backslash, control));
        quotes[index / 4] |= u64::from(_mm_movemask_epi8(quote) as u16) << (16 * (index % 4));
    }
    refused == 0
}

/// [`find_quotes`] eight bytes at a time, in plain arithmetic.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn find_quotes_swar(line: &[u8], quotes: &mut [u64; QUOTE_WORDS]) -> bool {
    let mut refused = 0;
    let mut words = line.chunks_exact(8);
    let mut last = [b' '; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    for (index, word) in words.by_ref().chain([&last[..]]).enumerate() {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        refused |= is_byte(word, b'\\') | is_control(word);
        quotes[index / 8] |= high_bits(is_byte(word, b'"')) << (8 * (index % 8));
    }
    refused == 0
}

#[cfg(any(test, not(target_arch = "x86_64")))]
const ONES: u64 = 0x0101_0101_0101_0101;
#[cfg(any(test, not(target_arch = "x86_64")))]
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
#[cfg(any(test, not(target_arch = "x86_64")))]
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that equals `byte` (and no other bit).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn is_byte(word: u64, byte: u8) -> u64 {
    let diff = word ^ (ONES * u64::from(byte));
    !(((diff & LOWS) + LOWS) | diff) & HIGHS
}

/// The high bit of each byte of `word` below 0x20 (and no other bit).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn is_control(word: u64) -> u64 {
    !(((word & LOWS) + ONES * 0x60) | word) & HIGHS
}

/// Bit `i` set for each byte `i` of `flags` whose high bit is set (and no other).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn high_bits(flags: u64) -> u64 {
    ((flags >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

struct Reader<'a, 'q> {
    text: &'a str,
    at: usize,
    /// Where the line's quotes are ([`find_quotes`]).
    quotes: &'q [u64; QUOTE_WORDS],
}

impl<'a> Reader<'a, '_> {
    fn skip_space(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not white space, left unread.
    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string, borrowed from the line: with no backslash in the line, it ends
    /// at the next quote.
    #[inline]
    fn str(&mut self) -> Option<&'a str> {
        match self.text.as_bytes().get(self.at) {
            Some(b'"') => self.at += 1,
            _ => self.eat(b'"')?,
        }
        let start = self.at;
        let mut word = start / 64;
        let mut quotes = self.quotes.get(word)? & (u64::MAX << (start % 64));
        while quotes == 0 {
            word += 1;
            quotes = *self.quotes.get(word)?;
        }
        let end = word * 64 + quotes.trailing_zeros() as usize;
        self.at = end + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..end)
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.str().map(Cow::Borrowed)
    }

    /// A whole number of at most 18 digits, no sign, no leading zero.
    fn integer(&mut self) -> Option<i64> {
        self.skip_space();
        let digits = self.text.as_bytes()[self.at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let text = &self.text[self.at..self.at + digits];
        if digits == 0 || digits > 18 || (digits > 1 && text.starts_with('0')) {
            return None;
        }
        self.at += digits;
        text.parse().ok()
    }

    fn boolean(&mut self) -> Option<bool> {
        let rest = &self.text[self.at..];
        let trimmed = rest.trim_start_matches([' ', '\n', '\r', '\t']);
        self.at += rest.len() - trimmed.len();
        if trimmed.starts_with("true") {
            self.at += 4;
            Some(true)
        } else if trimmed.starts_with("false") {
            self.at += 5;
            Some(false)
        } else {
            None
        }
    }

    /// `{ "key": value, … }`, each value read by `field`.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.str()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[ value, … ]`, each value read by `item`.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(items);
        }
        loop {
            items.push(item(self)?);
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(items);
                }
                _ => return None,
            }
        }
    }

    fn strings(&mut self) -> Option<Vec<Cow<'a, str>>> {
        self.array(Reader::string)
    }

    fn line_fields(&mut self) -> Option<RawLineFields<'a>> {
        let mut raw = RawLineFields::default();
        self.object(|reader, key| line_field(reader, &mut raw, key))?;
        Some(raw)
    }

    /// A line object, or a bare line id (cancellations).
    fn order_line(&mut self) -> Option<RawLine<'a>> {
        if self.peek()? == b'"' {
            let line = self.string()?;
            return Some(RawLine(RawLineFields { line: Some(line), ..RawLineFields::default() }));
        }
        self.line_fields().map(RawLine)
    }

    fn payment(&mut self) -> Option<RawPayment<'a>> {
        let (mut method, mut amount) = (None, None);
        self.object(|reader, key| match key {
            "method" => fill(&mut method, reader.string()?),
            "amount" => fill(&mut amount, reader.string()?),
            _ => None,
        })?;
        Some(RawPayment { method, amount })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    /// What the fast reader reads from `text`, if it reads an event.
    fn read(text: &str) -> Option<RawEvent<'_>> {
        let mut raw = RawEvent::default();
        super::read(text, &mut raw).then_some(raw)
    }

    /// What serde reads from `text`, if it reads an event.
    fn by_serde(text: &str) -> Option<RawEvent<'_>> {
        serde_json::from_str(text).ok()
    }

    /// Every event line of the examples and the scenarios.
    fn known_lines() -> &'static [String] {
        static LINES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(read_known_lines);
        &LINES
    }

    fn read_known_lines() -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files: Vec<_> =
            std::fs::read_dir(root.join("examples")).expect("examples").map(|e| e.expect("entry").path()).collect();
        for case in std::fs::read_dir(root.join("tests/scenarios")).expect("scenarios") {
            files.push(case.expect("entry").path().join("events.jsonl"));
        }
        let mut lines = Vec::new();
        for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "jsonl")) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            lines.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
        }
        lines
    }

    #[test]
    fn the_usual_lines_read_as_serde_reads_them() {
        let lines = known_lines();
        assert!(lines.len() > 1000, "only {} lines found", lines.len());
        let mut read_here = 0;
        for line in lines {
            if let Some(raw) = read(line) {
                assert_eq!(Some(&raw), by_serde(line).as_ref(), "{line}");
                read_here += 1;
            }
        }
        // Almost every line has the usual shape: the fast path is really taken.
        assert!(read_here * 10 >= lines.len() * 9, "{read_here} of {} lines", lines.len());
    }

    #[test]
    fn unusual_shapes_are_left_to_serde() {
        let order = r#"{"id":"e-1","type":"order.placed","lines":[{"line":"1","quantity":2}],"staff":true}"#;
        assert!(read(order).is_some());
        for unusual in [
            order.replace("e-1", r"e-\u0031"),
            order.replace("\"e-1\"", "null"),
            order.replace(":2", ":-2"),
            order.replace(":2", ":02"),
            order.replace(":2", ":2.0"),
            order.replace(":2", ":2e0"),
            order.replace(":2", ":\"2\""),
            order.replace("true", "1"),
            order.replace("true", "tru"),
            order.replace("\"staff\"", "\"extra\""),
            order.replace("\"staff\"", "\"id\""),
            order.replace("}]", "},]"),
            order.replace("]", ""),
            format!("{order}x"),
            format!("[{order}]"),
            order.replace("e-1", "e-\u{1}"),
        ] {
            assert_eq!(read(&unusual), None, "{unusual}");
        }
        let spaced = " { \"id\" : \"e-1\" ,  \"lines\" : [ \"1\" , { } ] , \"staff\" : false } ";
        assert_eq!(read(spaced), by_serde(spaced));
        assert!(read(spaced).is_some());
        // Tabs and line breaks between values are JSON, but not the usual shape.
        let tabbed = spaced.replace(" ,", "\t,").replace("[ ", "[\r\n");
        assert!(by_serde(&tabbed).is_some());
        assert_eq!(read(&tabbed), None);
    }

    proptest! {
        /// The quote map marks exactly the quotes, and refuses exactly the lines
        /// with a backslash or a control character (or too long for the map).
        #[test]
        fn the_quote_map_marks_every_quote(line in prop::collection::vec(prop::sample::select(
            vec![b'"', b'\\', b'a', b' ', 0x1f, 0x20, 0x7f, 0x80, 0xa2, 0xdc, 0xff, 0x00, b'\t']
        ), 0..300), long in any::<bool>()) {
            let line = if long { [&[b'a'; QUOTE_WORDS * 64 - 150][..], &line].concat() } else { line };
            let mut quotes = [0; QUOTE_WORDS];
            let accepted = find_quotes(&line, &mut quotes);
            let plain = line.len() < QUOTE_WORDS * 64 && line.iter().all(|b| *b != b'\\' && *b >= 0x20);
            prop_assert_eq!(accepted, plain);
            if line.len() < QUOTE_WORDS * 64 {
                let mut by_words = [0; QUOTE_WORDS];
                prop_assert_eq!(find_quotes_swar(&line, &mut by_words), plain);
                if plain {
                    prop_assert_eq!(by_words, quotes);
                }
            }
            if plain {
                for (index, byte) in line.iter().enumerate() {
                    prop_assert_eq!(quotes[index / 64] >> (index % 64) & 1 == 1, *byte == b'"', "byte {}", index);
                }
                prop_assert!(quotes.iter().enumerate().all(|(word, bits)| *bits == 0 || word * 64 + 64 - bits.leading_zeros() as usize <= line.len()));
            }
        }
    }

    proptest! {
        /// Whatever a line becomes, the fast reader either gives up or agrees with serde.
        #[test]
        fn variations_agree_with_serde(
            pick in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(
                vec![b'"', b'\\', b',', b':', b'{', b'}', b'[', b']', b' ', b'0', b'1', b'-', b'.', b'e', b't', b'n', b'x']
            )), 1..4),
        ) {
            let lines = known_lines();
            let mut bytes = lines[pick.index(lines.len())].clone().into_bytes();
            for (place, kind, byte) in edits {
                let at = place.index(bytes.len() + 1);
                match kind {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => { bytes.remove(at); }
                    _ if at < bytes.len() => bytes[at] = byte,
                    _ => bytes.push(byte),
                }
            }
            if let Ok(text) = String::from_utf8(bytes) && let Some(raw) = read(&text) {
                prop_assert_eq!(Some(raw), by_serde(&text), "{}", text);
            }
        }
    }
}
