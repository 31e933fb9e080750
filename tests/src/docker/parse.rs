//! Parsers and comparisons for what Docker and the CLI print.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use chrono::DateTime;

/// Seconds since the epoch of an RFC 3339 timestamp such as Docker's
/// `2026-01-02T03:04:05.123456789Z`.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let t = DateTime::parse_from_rfc3339(s.trim()).ok()?;
    Some(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
}

/// Seconds since the epoch of a wall-clock time.
pub fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Bytes of a Docker CLI size such as `50.29MiB`, `1.2kB` or `0B`.
pub fn parse_docker_size(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "B" | "" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some(n * mult)
}

/// `None` when equal, else where and how two byte strings differ (short).
pub fn bytes_diff(got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let ctx = |b: &[u8]| {
        let from = at.saturating_sub(40);
        let to = (at + 80).min(b.len());
        format!("{:?}", String::from_utf8_lossy(&b[from.min(to)..to]))
    };
    Some(format!(
        "lengths {} (got) vs {} (want); first difference at byte {at}\n  got:  {}\n  want: {}",
        got.len(),
        want.len(),
        ctx(got),
        ctx(want)
    ))
}

/// Fail with a readable message unless `got == want`.
pub fn assert_bytes_eq(what: &str, got: &[u8], want: &[u8]) -> Result<()> {
    match bytes_diff(got, want) {
        None => Ok(()),
        Some(d) => bail!("{what}: {d}"),
    }
}

/// Decode standard base64 (with or without padding).
pub fn b64_decode(s: &str) -> Result<Vec<u8>> {
    const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    STANDARD_ANY_PADDING
        .decode(s.trim())
        .with_context(|| format!("bad base64: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let t = parse_rfc3339("1970-01-02T00:00:01.5Z");
        assert_eq!(t, Some(86_401.5));
        let t = parse_rfc3339("2024-03-01T12:00:00.000000001Z");
        assert!(t.is_some_and(|v| (v - 1_709_294_400.0).abs() < 1e-3));
        assert_eq!(parse_docker_size("50MiB"), Some(50.0 * 1024.0 * 1024.0));
        assert_eq!(parse_docker_size("1.5kB"), Some(1500.0));
        assert_eq!(parse_docker_size("0B"), Some(0.0));
        assert!(bytes_diff(b"abc", b"abc").is_none());
        assert!(bytes_diff(b"abc", b"abd").is_some());
        assert_eq!(b64_decode("//5iaW5hcnkK").unwrap(), b"\xff\xfebinary\n");
        assert_eq!(b64_decode("YQ==").unwrap(), b"a");
        assert_eq!(b64_decode("YWI").unwrap(), b"ab");
    }
}
