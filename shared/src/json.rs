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
        while let Some(block) = b
            .get(i..i + BLOCK)
            .and_then(|s| <&[u8; BLOCK]>::try_from(s).ok())
        {
            if block_needs_escape(block) {
                break;
            }
            i += BLOCK;
        }
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
}
