//! Table and JSON output.

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
        Output::Table => eprintln!("error: {e:#}"),
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

/// Print rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
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
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Print `key: value` lines, keys aligned.
pub fn pairs(items: &[(&str, String)]) {
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in items {
        println!("{:<w$}  {v}", format!("{k}:"), w = w + 1);
    }
}
