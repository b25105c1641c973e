//! A reader for the usual shape of an event line, written for speed.
//!
//! Nearly every line a replay reads is a plain JSON object: known keys, strings
//! without escapes, small whole numbers, `true` and `false`. [`read`] reads exactly
//! that shape straight into a [`RawEvent`], borrowing every string from the line.
//! On anything else (an escape, `null`, a number with a sign, a fraction or an
//! exponent, a key it does not know, a key given twice, a value of another type,
//! malformed JSON) it gives up and returns `None`, and the caller reads the line
//! with serde, which also explains what is wrong with it.
//!
//! The one rule: when [`read`] returns `Some`, it is what serde would have read.
//! The tests below check that on every line of the examples and scenarios and on
//! random variations of them.

use std::borrow::Cow;

use super::{RawEvent, RawLine, RawLineFields, RawPayment};

/// Reads the event of `text` into `raw` (fresh), when it has the usual shape; false
/// sends the line to serde (`raw` is then left partly filled).
pub(super) fn read<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> bool {
    let mut reader = Reader { text, at: 0 };
    let read = reader.object(|reader, key| event_field(reader, raw, key));
    reader.skip_space();
    read.is_some() && reader.at == text.len()
}

fn event_field<'a>(reader: &mut Reader<'a>, raw: &mut RawEvent<'a>, key: &str) -> Option<()> {
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

fn line_field<'a>(reader: &mut Reader<'a>, raw: &mut RawLineFields<'a>, key: &str) -> Option<()> {
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

/// The high bit of each byte of `word` that is a quote, a backslash or a control
/// character. Bytes above (after) the lowest flagged one may be flagged wrongly; the
/// lowest flag is always right.
fn string_end_flags(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
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

    /// A string with no escape and no control character, borrowed from the line.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        // Eight bytes at a time: the lowest flagged byte of a word is the first quote,
        // backslash or control character; near the end of the line, byte by byte.
        let end = loop {
            match bytes.get(self.at..self.at + 8) {
                Some(word) => {
                    let flags = string_end_flags(u64::from_le_bytes(word.try_into().ok()?));
                    if flags != 0 {
                        break self.at + (flags.trailing_zeros() / 8) as usize;
                    }
                    self.at += 8;
                }
                None => break self.at + bytes[self.at..].iter().position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))?,
            }
        };
        if bytes[end] != b'"' {
            return None;
        }
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
        let spaced = " {\t\"id\" : \"e-1\" ,\r\n \"lines\" : [ \"1\" , { } ] , \"staff\" : false } ";
        assert_eq!(read(spaced), by_serde(spaced));
        assert!(read(spaced).is_some());
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
