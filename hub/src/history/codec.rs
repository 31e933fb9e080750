//! The packed form of a set of points: one section per container, each a
//! run of columns (time, counts, CPU, memory, network, restarts, state,
//! health) of zigzag varints, delta-encoded (delta-of-delta for time and the
//! network counters, which grow steadily; maxima as their excess over the
//! mean, zero for a single sample), states and healths as indices in one
//! string table. A block is deflated (flate2, the crate the backups
//! already use); a row of one bucket is left raw (it is small and short-lived).
//!
//! Decoding is bounded: at most [`MAX_UNPACKED`] bytes inflated and
//! [`MAX_POINTS`] points, and any malformed input is an error, never a panic.

use std::io::{Read, Write};
use std::sync::Arc;

use super::Point;

/// Inflated bytes one packed value may hold.
pub const MAX_UNPACKED: u64 = 16 * 1024 * 1024;
/// Points one packed value may hold.
pub const MAX_POINTS: usize = 1_000_000;
/// Deflate level for blocks (3: most of level 9's ratio on these columns
/// at a fraction of its time).
const LEVEL: u32 = 3;

const RAW: u8 = 1;
const DEFLATED: u8 = 2;

/// A packed value that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("packed health history: {0}")]
pub struct CodecError(pub &'static str);

type Result<T> = std::result::Result<T, CodecError>;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over packed bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or(CodecError("truncated"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError("varint too long"))
    }

    fn len(&mut self, max: usize) -> Result<usize> {
        let n = usize::try_from(self.varint()?).map_err(|_| CodecError("length"))?;
        if n > max {
            return Err(CodecError("length past the bound"));
        }
        Ok(n)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or(CodecError("length"))?;
        let s = self.buf.get(self.at..end).ok_or(CodecError("truncated"))?;
        self.at = end;
        Ok(s)
    }

    fn string(&mut self) -> Result<&'a str> {
        let n = self.len(self.buf.len())?;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|_| CodecError("string not UTF-8"))
    }
}

/// A column: how to read it off a point, and whether it is delta-of-delta.
type Column = (fn(&Point) -> i64, bool);

/// Columns of a section, in order.
const COLUMNS: [Column; 13] = [
    (|p| p.t, true),
    (|p| p.n, false),
    (|p| p.cpu_n, false),
    (|p| p.cpu_avg, false),
    (|p| p.cpu_max - p.cpu_avg, false),
    (|p| p.mem_avg, false),
    (|p| p.mem_max - p.mem_avg, false),
    (|p| p.mem_limit, false),
    (|p| p.net_rx, true),
    (|p| p.net_tx, true),
    (|p| p.restarts, false),
    (|_| 0, false), // state index (set apart: needs the table)
    (|_| 0, false), // health index + 1, 0 for none
];

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Points a section needs before its columns carry a scale (a row's
/// one-point sections would pay a byte per column for nothing).
const MIN_SCALED: usize = 4;

/// Write a column of `n` values: with at least [`MIN_SCALED`], its scale (the
/// values' greatest common divisor, so figures rounded to tenths or KiB cost
/// no bits for it), then the values divided by it, delta-encoded.
fn put_column(out: &mut Vec<u8>, vals: impl Iterator<Item = i64> + Clone, n: usize, dod: bool) {
    let mut g = 1;
    if n >= MIN_SCALED {
        let common = vals.clone().fold(0, |g, v| gcd(g, v.unsigned_abs())).max(1);
        g = i64::try_from(common).unwrap_or(1);
        put_varint(out, g as u64);
    }
    let (mut prev, mut prev_d) = (0i64, 0i64);
    for v in vals.map(|v| v / g) {
        let d = v.wrapping_sub(prev);
        let e = if dod { d.wrapping_sub(prev_d) } else { d };
        put_varint(out, zigzag(e));
        prev = v;
        prev_d = d;
    }
}

fn get_column(c: &mut Cursor<'_>, n: usize, dod: bool) -> Result<Vec<i64>> {
    let g = if n >= MIN_SCALED {
        i64::try_from(c.varint()?).map_err(|_| CodecError("column scale"))?
    } else {
        1
    };
    let (mut prev, mut prev_d) = (0i64, 0i64);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let e = unzigzag(c.varint()?);
        let d = if dod { prev_d.wrapping_add(e) } else { e };
        prev = prev.wrapping_add(d);
        prev_d = d;
        out.push(prev.wrapping_mul(g));
    }
    Ok(out)
}

/// The index of `s` in `table`, adding it.
fn intern(table: &mut Vec<String>, s: &str) -> i64 {
    match table.iter().position(|t| t == s) {
        Some(i) => i as i64,
        None => {
            table.push(s.to_string());
            (table.len() - 1) as i64
        }
    }
}

/// Pack `points` (normalized: sorted by container then time, see
/// [`super::normalize`]); `compress` deflates the result.
pub fn encode(points: &[Point], compress: bool) -> Vec<u8> {
    let mut table = Vec::new();
    let mut sections = Vec::new();
    for run in points.chunk_by(|a, b| a.container == b.container) {
        let states: Vec<i64> = run.iter().map(|p| intern(&mut table, &p.state)).collect();
        let healths: Vec<i64> = run
            .iter()
            .map(|p| p.health.as_deref().map_or(0, |h| intern(&mut table, h) + 1))
            .collect();
        let mut body = Vec::with_capacity(run.len() * 16);
        for (f, dod) in &COLUMNS[..11] {
            put_column(&mut body, run.iter().map(f), run.len(), *dod);
        }
        put_column(&mut body, states.into_iter(), run.len(), false);
        put_column(&mut body, healths.into_iter(), run.len(), false);
        sections.push((&run[0].container, run.len(), body));
    }
    let mut raw = Vec::new();
    put_varint(&mut raw, table.len() as u64);
    for s in &table {
        put_varint(&mut raw, s.len() as u64);
        raw.extend_from_slice(s.as_bytes());
    }
    put_varint(&mut raw, sections.len() as u64);
    for (name, n, body) in sections {
        put_varint(&mut raw, name.len() as u64);
        raw.extend_from_slice(name.as_bytes());
        put_varint(&mut raw, n as u64);
        put_varint(&mut raw, body.len() as u64);
        raw.extend_from_slice(&body);
    }
    if !compress {
        let mut out = Vec::with_capacity(raw.len() + 1);
        out.push(RAW);
        out.extend_from_slice(&raw);
        return out;
    }
    let mut z = flate2::write::DeflateEncoder::new(vec![DEFLATED], flate2::Compression::new(LEVEL));
    // Writing to a Vec cannot fail.
    let _ = z.write_all(&raw);
    z.finish().unwrap_or_default()
}

/// The raw bytes of a packed value (inflated when it is a block), for
/// [`decode_raw`].
pub fn unpack(packed: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    match packed.split_first() {
        Some((&RAW, rest)) => Ok(rest.into()),
        Some((&DEFLATED, rest)) => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(rest)
                .take(MAX_UNPACKED + 1)
                .read_to_end(&mut out)
                .map_err(|_| CodecError("bad deflate stream"))?;
            if out.len() as u64 > MAX_UNPACKED {
                return Err(CodecError("inflates past the bound"));
            }
            Ok(out.into())
        }
        _ => Err(CodecError("unknown format")),
    }
}

/// Unpack `packed`; with `only`, just that container's points (the other
/// sections are skipped, not decoded).
pub fn decode(packed: &[u8], only: Option<&str>) -> Result<Vec<Point>> {
    decode_raw(&unpack(packed)?, only)
}

/// [`decode`] of bytes [`unpack`] gave.
pub fn decode_raw(raw: &[u8], only: Option<&str>) -> Result<Vec<Point>> {
    let mut c = Cursor { buf: raw, at: 0 };
    let n_strings = c.len(MAX_POINTS)?;
    let table = (0..n_strings)
        .map(|_| c.string().map(Arc::from))
        .collect::<Result<Vec<Arc<str>>>>()?;
    let n_sections = c.len(MAX_POINTS)?;
    let mut out = Vec::new();
    for _ in 0..n_sections {
        let name = c.string()?;
        let n = c.len(MAX_POINTS.saturating_sub(out.len()))?;
        let body_len = c.len(raw.len())?;
        let body = c.bytes(body_len)?;
        if only.is_some_and(|o| o != name) {
            continue;
        }
        section(&mut Cursor { buf: body, at: 0 }, name, n, &table, &mut out)?;
    }
    Ok(out)
}

/// Decode one section of `n` points into `out`.
fn section(
    c: &mut Cursor<'_>,
    name: &str,
    n: usize,
    table: &[Arc<str>],
    out: &mut Vec<Point>,
) -> Result<()> {
    let name: Arc<str> = name.into();
    let cols = COLUMNS
        .iter()
        .map(|(_, dod)| get_column(c, n, *dod))
        .collect::<Result<Vec<_>>>()?;
    let text = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| table.get(i))
            .cloned()
            .ok_or(CodecError("string index"))
    };
    let point = |i: usize| -> Result<Point> {
        let col = |k: usize| cols[k][i];
        Ok(Point {
            t: col(0),
            container: name.clone(),
            n: col(1),
            cpu_n: col(2),
            cpu_avg: col(3),
            cpu_max: col(4).wrapping_add(col(3)),
            mem_avg: col(5),
            mem_max: col(6).wrapping_add(col(5)),
            mem_limit: col(7),
            net_rx: col(8),
            net_tx: col(9),
            restarts: col(10),
            state: text(col(11))?,
            health: match col(12) {
                0 => None,
                h => Some(text(h - 1)?),
            },
        })
    };
    for i in 0..n {
        out.push(point(i)?);
    }
    Ok(())
}
