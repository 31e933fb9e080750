//! Table and JSON output. Every string a table shows passes through
//! [`printable`]: hostnames, versions, labels, container names and error
//! texts come from agents, and an escape sequence in one could rewrite the
//! operator's terminal (JSON output escapes control characters itself).

use std::borrow::Cow;

use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document (NDJSON for streams).
    Json,
}

/// Report a failed command on stderr: `error: ...`, or with `--output json`
/// one line `{"error": {"code", "message"}}`, `code` the hub's error code
/// when the hub refused the request (`not_found`, `forbidden`, ...), else
/// `cli_error` (bad flags, an unreachable hub, a local file).
pub fn print_error(e: &anyhow::Error, out: Output) {
    match out {
        Output::Table => eprintln!("error: {}", printable(&format!("{e:#}"))),
        Output::Json => {
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<super::client::HubError>())
                .map(|h| serde_json::to_value(h.0.code).unwrap_or_default())
                .unwrap_or_else(|| serde_json::Value::from("cli_error"));
            let doc = serde_json::json!({"error": {"code": code, "message": format!("{e:#}")}});
            eprintln!("{doc}");
        }
    }
}

/// Print a JSON document.
pub fn json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `text` with every control character (C0, DEL, C1: ESC, CR, BEL, ...)
/// written as a visible escape (`\u{1b}`) instead, so printing it cannot
/// move the cursor, recolour or retitle the terminal. Borrowed when clean.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Print rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| printable(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(|c| c.as_ref()).collect());
    }
}

/// Print `key: value` lines, keys aligned.
pub fn pairs(items: &[(&str, String)]) {
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in items {
        println!("{:<w$}  {}", format!("{k}:"), printable(v), w = w + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(printable("web-1 (Ubuntu 24.04)"), "web-1 (Ubuntu 24.04)");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            printable("evil\u{1b}]0;owned\u{7}\u{1b}[2J\r\n\u{7f}\u{9b}x"),
            "evil\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}\\u{a}\\u{7f}\\u{9b}x"
        );
        assert!(!printable("a\u{1b}b").chars().any(char::is_control));
        // Printable non-ASCII stays as it is.
        assert_eq!(printable("héllo ✓"), "héllo ✓");
    }
}
