//! JSON text for the bulk of a stream, written without serde.
//!
//! A log chunk is one long string, and serde_json escapes a string a byte at
//! a time: that was the largest single cost of an agent streaming logs.
//! [`write_str`] tests 64 bytes at a time for a byte that needs an escape and
//! copies the runs between them whole; its output is byte for byte what
//! serde_json writes. [`text_object`] builds a reply's `data` from string
//! fields, to travel as [`RawData::Written`](crate::protocol::RawData) and be
//! framed by [`frame::encode_reply`](crate::frame::encode_reply) without
//! serde seeing the text again.

/// Bytes tested at once: the loop below compiles to vector compares.
const BLOCK: usize = 64;

/// Whether any byte of `block` needs an escape (no early exit, so that the
/// compiler can test the whole block in a few vector instructions).
#[inline]
fn block_needs_escape(block: &[u8; BLOCK]) -> bool {
    block.iter().fold(false, |any, &c| any | needs_escape(c))
}

/// From `i`, past every whole 64-byte block of `b` with no byte that needs
/// an escape: the index of the first block that has one, or of the tail.
#[inline]
fn skip_plain_blocks(b: &[u8], mut i: usize) -> usize {
    while let Some(block) = b
        .get(i..i + BLOCK)
        .and_then(|s| <&[u8; BLOCK]>::try_from(s).ok())
    {
        if block_needs_escape(block) {
            break;
        }
        i += BLOCK;
    }
    i
}

#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn escape_byte(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        }
    }
}

/// Append `s` as a JSON string literal (quotes included), escaped exactly as
/// serde_json escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let (mut i, mut run) = (0, 0);
    while i < b.len() {
        i = skip_plain_blocks(b, i);
        let end = (i + BLOCK).min(b.len());
        while i < end {
            if needs_escape(b[i]) {
                out.extend_from_slice(&b[run..i]);
                escape_byte(out, b[i]);
                run = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// `{"k1":"v1","k2":"v2",...}`, for a reply's `data`. Give the keys in
/// sorted order to get the bytes serde_json writes for a `json!` object.
pub fn text_object(fields: &[(&str, &str)]) -> String {
    let len: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    let mut out = Vec::with_capacity(len + 2);
    out.push(b'{');
    for (n, (k, v)) in fields.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_str(&mut out, k);
        out.push(b':');
        write_str(&mut out, v);
    }
    out.push(b'}');
    // Only whole strings and ASCII punctuation were appended, so this is
    // UTF-8; were it not, an empty object is still valid JSON in a frame.
    String::from_utf8(out).unwrap_or_else(|_| "{}".to_string())
}

/// The leading halves of a UTF-16 surrogate pair.
const HIGH_SURROGATES: std::ops::RangeInclusive<u16> = 0xD800..=0xDBFF;
/// The trailing halves of a UTF-16 surrogate pair.
const LOW_SURROGATES: std::ops::RangeInclusive<u16> = 0xDC00..=0xDFFF;

/// The code unit of the four hex digits of a `\u` escape at `at`.
fn hex_unit(b: &[u8], at: usize) -> Option<u16> {
    let hex = b.get(at..at + 4)?;
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// The end of a JSON string literal whose body starts at `i` (just after
/// its opening quote): the index of the closing quote, or `None` when the
/// body is not one serde_json would accept in every case: a control byte,
/// an unknown escape, a `\u` without four hex digits, a surrogate escape
/// not in a pair, or no closing quote.
/// UTF-8 is not checked here.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = skip_plain_blocks(b, i);
        let c = *b.get(i)?;
        match c {
            b'"' => return Some(i),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let unit = hex_unit(b, i + 2)?;
                    i += 6;
                    // UTF-16 surrogates only in pairs, as serde_json reads a
                    // string (its RawValue does not check them; a client's
                    // parser of the relayed text would).
                    if LOW_SURROGATES.contains(&unit) {
                        return None;
                    }
                    if HIGH_SURROGATES.contains(&unit) {
                        if b.get(i..i + 2) != Some(&b"\\u"[..])
                            || !LOW_SURROGATES.contains(&hex_unit(b, i + 2)?)
                        {
                            return None;
                        }
                        i += 6;
                    }
                }
                _ => return None,
            },
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
}

/// Whether `text` is a flat JSON object of string fields as [`text_object`]
/// writes it (`{"k":"v",...}`, no whitespace), every string valid JSON and
/// the whole valid UTF-8: the shape of every log chunk an agent sends. The
/// hub checks a chunk with this instead of serde (which reads a long string
/// a byte at a time); anything else, valid or not, gets `false` and goes to
/// serde. Accepting only what serde accepts is tested below.
pub fn is_flat_object(text: &[u8]) -> bool {
    flat_object(text).is_some()
}

/// [`is_flat_object`], handing out the checked text.
pub fn flat_object(text: &[u8]) -> Option<&str> {
    let checked = std::str::from_utf8(text).ok()?;
    flat_shape(text).then_some(checked)
}

fn flat_shape(text: &[u8]) -> bool {
    let (Some(b'{'), Some(b'}')) = (text.first(), text.last()) else {
        return false;
    };
    let end = text.len() - 1;
    let mut i = 1;
    if i == end {
        return true;
    }
    loop {
        // "key":"value"
        for sep in [b':', b','] {
            if text.get(i) != Some(&b'"') {
                return false;
            }
            let Some(close) = string_end(text, i + 1) else {
                return false;
            };
            i = close + 1;
            if sep == b':' {
                if text.get(i) != Some(&b':') {
                    return false;
                }
                i += 1;
            }
        }
        match text.get(i) {
            Some(b',') if i < end => i += 1,
            _ => return i == end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    /// Byte for byte what serde_json writes: every ASCII byte at every
    /// position around the 64-byte blocks, multi-byte characters, long text.
    #[test]
    fn escapes_exactly_as_serde_json_does() {
        for b in 0u8..0x80 {
            for pos in [0, 1, 7, 8, 15, 31, 32, 33, 63, 64, 65, 127, 128, 130] {
                let mut s = "a".repeat(pos);
                s.push(b as char);
                s.push_str(&"z".repeat(70));
                assert_eq!(
                    ours(&s),
                    serde_json::to_string(&s).unwrap(),
                    "byte {b:#x} at {pos}"
                );
            }
        }
        let samples = [
            "",
            "plain",
            "exactly 32 bytes of plain text!!",
            "line one\nline two\r\n\ttabbed \"quoted\" back\\slash",
            "héllo wörld — ünïcödé ✓ 日本語 🚀 \u{7f} \u{1b}[31mred\u{1b}[0m",
            "\u{0}\u{1}\u{1f}\u{8}\u{c}",
        ];
        for s in samples {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        let long: String = (0..50_000)
            .map(|i| match i % 97 {
                0 => '\n',
                13 => '"',
                29 => 'é',
                41 => '\\',
                55 => '\u{3}',
                71 => '🚀',
                _ => (b'a' + (i % 26) as u8) as char,
            })
            .collect();
        assert_eq!(ours(&long), serde_json::to_string(&long).unwrap());
    }

    #[test]
    fn text_object_is_what_serde_json_writes() {
        let text = "a \"b\"\n\u{1}ü";
        let ours = text_object(&[("stream", "stdout"), ("text", text)]);
        let theirs = serde_json::json!({"stream": "stdout", "text": text}).to_string();
        assert_eq!(ours, theirs);
        assert_eq!(text_object(&[]), "{}");
    }

    /// serde_json's verdict on `text` as JSON.
    fn serde_accepts(text: &[u8]) -> bool {
        serde_json::from_slice::<&serde_json::value::RawValue>(text).is_ok()
    }

    #[test]
    fn flat_objects_that_text_object_writes_are_accepted() {
        let long = "x\"\\\n\u{1}é漢🦀/".repeat(500);
        for fields in [
            vec![],
            vec![("chunk", "")],
            vec![("chunk", long.as_str())],
            vec![("stream", "stdout"), ("text", long.as_str())],
            vec![("a", "\u{0}\u{1f}"), ("b", "\\u0041"), ("c", "\"")],
        ] {
            let t = text_object(&fields);
            assert!(is_flat_object(t.as_bytes()), "{t}");
            assert!(serde_accepts(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn flat_object_check_accepts_nothing_serde_refuses() {
        // Bodies built from the bytes that matter to a string's end and
        // escapes, around the 64-byte blocks, in every arrangement the
        // generator reaches; each verdict must imply serde's.
        let atoms: [&[u8]; 16] = [
            b"a",
            b"\"",
            b"\\",
            b"\\\"",
            b"\\n",
            b"\\u00e9",
            b"\\u12",
            b"\\x",
            b"\n",
            b"\x1f",
            b"\x7f",
            "é".as_bytes(),
            b"\xc3",
            b"\xff",
            b"}",
            b"\":\"",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut body = Vec::new();
            let pad = (next() % 130) as usize;
            body.extend(std::iter::repeat_n(b'p', pad));
            for _ in 0..(next() % 4) {
                body.extend_from_slice(atoms[(next() % 16) as usize]);
            }
            body.extend(std::iter::repeat_n(b'q', (next() % 70) as usize));
            let mut text = b"{\"chunk\":\"".to_vec();
            text.extend_from_slice(&body);
            text.extend_from_slice(b"\"}");
            if next() % 5 == 0 {
                text.insert(1 + (next() as usize % (text.len() - 1)), b',');
            }
            if is_flat_object(&text) {
                assert!(
                    serde_accepts(&text),
                    "accepted what serde refuses: {:?}",
                    String::from_utf8_lossy(&text)
                );
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // The generator reaches both verdicts often.
        assert!(
            accepted > 2_000 && refused > 2_000,
            "{accepted} / {refused}"
        );
    }

    #[test]
    fn flat_object_check_refuses_other_shapes() {
        for bad in [
            &b""[..],
            b"{",
            b"{}}",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1}",
            b"{\"a\":\"b\",}",
            b"{\"a\":\"b\" }",
            b"{\"a\":\"b\"",
            b"{\"a\":\"b\"}x",
            b"{\"a\":\"b\",\"c\"}",
            b"[\"a\"]",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\\ud800\"",
        ] {
            assert!(!is_flat_object(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        // Escapes of surrogates, paired or not: accepted exactly when serde
        // reads the string (a `Value`, as a client does). The fuzz target
        // `flat_object` found a lone `\udddd` accepted (its input is in
        // fuzz/corpus/flat_object/crash-23a1c260...).
        for (t, ok) in [
            (&br#"{"a":"\ud800"}"#[..], false),
            (br#"{"a":"\udc00\ud800"}"#, false),
            (br#"{"a":"\ud83e\udd80"}"#, true),
            (br#"{"a":"\uD83E\uDD80x\u00e9"}"#, true),
            (br#"{"a":"\uDFFF"}"#, false),
            (br#"{"a":"\ud800\u0041"}"#, false),
            (br#"{"a":"\ud800\n"}"#, false),
            (br#"{"a":"\ud800\ud800"}"#, false),
            (br#"{"a":"\ud800\udc0"}"#, false),
            (br#"{"a":"\ud800\"}"#, false),
        ] {
            let text = String::from_utf8_lossy(t);
            assert_eq!(is_flat_object(t), ok, "{text}");
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(t).is_ok(),
                ok,
                "{text}"
            );
        }
        // Valid JSON of another shape is refused too (serde takes it).
        assert!(!is_flat_object(br#"{"a": "b"}"#));
        assert!(!is_flat_object(br#"{"a":{"b":"c"}}"#));
    }
}
