//! Unix timestamps, RFC 3339 rendering and short durations (`90s`, `15m`, `1h`, `7d`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Render a Unix timestamp as RFC 3339 in UTC, e.g. `2026-11-25T08:00:00Z`.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` to Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let num = |s: &str| s.parse::<i64>().ok();
    let (date, rest) = t.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let pos = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (c, sign * (num(oh)? * 3600 + num(om)? * 60))
    };
    let clock = clock.split('.').next()?;
    let mut c = clock.splitn(3, ':');
    let (hh, mm, ss) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m as u32, day as u32) * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// Howard Hinnant's civil-to-days algorithm.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A point in time as the docker CLI takes it for `--since`/`--until`: a
/// duration back from now (`10m`), Unix seconds, or RFC 3339.
pub fn parse_point(text: &str, now: i64) -> Result<i64, String> {
    let t = text.trim();
    if let Some(ts) = parse_rfc3339(t) {
        return Ok(ts);
    }
    if t.chars().all(|c| c.is_ascii_digit()) && t.len() >= 9 {
        return t.parse().map_err(|_| format!("bad timestamp {t:?}"));
    }
    parse_duration(t)
        .map(|d| now - d.as_secs() as i64)
        .map_err(|_| format!("{t:?} is not a duration (10m), a Unix time or an RFC 3339 time"))
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parse a duration such as `30s`, `15m`, `1h`, `7d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 15m, 1h, 7d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use s, m, h or d"
            ))
        }
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// A time as the wire carries it: RFC 3339 text, or Unix seconds as older
/// peers and stored records wrote it; read as RFC 3339 in UTC. A visitor of
/// its own rather than an untagged enum: serde buffers an untagged value
/// (a copy of the text) before it tries each form, and the hub reads one of
/// these per container per snapshot.
struct WireTime;

impl WireTime {
    fn text<E: serde::de::Error>(t: &str) -> Result<String, E> {
        let n =
            parse_rfc3339(t).ok_or_else(|| E::custom(format!("{t:?} is not an RFC 3339 time")))?;
        Ok(rfc3339(n))
    }
}

impl<'de> serde::de::Visitor<'de> for WireTime {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an RFC 3339 time or Unix seconds")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Self::text(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(rfc3339(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        i64::try_from(v)
            .map(rfc3339)
            .map_err(|_| E::custom(format!("{v} is not a time")))
    }
}

/// [`WireTime`] or nothing.
struct MaybeWireTime;

impl<'de> serde::de::Visitor<'de> for MaybeWireTime {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an RFC 3339 time, Unix seconds or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(WireTime).map(Some)
    }
}

/// Serde `deserialize_with` for a time field written as RFC 3339: reads RFC
/// 3339 text or a legacy integer of Unix seconds, and gives RFC 3339 in UTC.
pub fn de_rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(WireTime)
}

/// [`de_rfc3339`] for an optional field (`null` or absent is `None`).
pub fn de_rfc3339_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(MaybeWireTime)
}

/// [`de_rfc3339_opt`] into a [`compact_str::CompactString`] (a normalised
/// time, 20 bytes, is kept inline).
pub fn de_rfc3339_opt_compact<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<compact_str::CompactString>, D::Error> {
    de_rfc3339_opt(d).map(|t| t.map(compact_str::CompactString::from))
}

/// Human rendering of an age in seconds: `12s`, `5m`, `3h`, `2d`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_600_000), "2026-11-25T09:46:40Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_points() {
        assert_eq!(parse_rfc3339("2026-11-25T09:46:40Z"), Some(1_795_600_000));
        assert_eq!(
            parse_rfc3339("2026-11-25T10:46:40.123+01:00"),
            Some(1_795_600_000)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_rfc3339("nope"), None);
        assert_eq!(parse_point("10m", 1000), Ok(400));
        assert_eq!(parse_point("1795600000", 0), Ok(1_795_600_000));
        assert!(parse_point("yesterday", 0).is_err());
    }

    #[derive(serde::Deserialize)]
    struct Stamped {
        #[serde(deserialize_with = "de_rfc3339")]
        at: String,
        #[serde(default, deserialize_with = "de_rfc3339_opt")]
        until: Option<String>,
    }

    #[test]
    fn reads_rfc3339_or_legacy_unix() {
        let v: Stamped = serde_json::from_str(r#"{"at": 1795600000}"#).unwrap();
        assert_eq!((v.at.as_str(), v.until), ("2026-11-25T09:46:40Z", None));
        let v: Stamped =
            serde_json::from_str(r#"{"at": "2026-11-25T10:46:40+01:00", "until": 0}"#).unwrap();
        assert_eq!(v.at, "2026-11-25T09:46:40Z");
        assert_eq!(v.until.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert!(serde_json::from_str::<Stamped>(r#"{"at": "soon"}"#).is_err());
        let v: Stamped =
            serde_json::from_str(r#"{"at": "2026-11-25T09:46:40Z", "until": null}"#).unwrap();
        assert_eq!((v.at.as_str(), v.until), ("2026-11-25T09:46:40Z", None));
        assert!(serde_json::from_str::<Stamped>(r#"{"at": -1.5}"#).is_err());
        assert!(serde_json::from_str::<Stamped>(r#"{"at": 18446744073709551615}"#).is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
