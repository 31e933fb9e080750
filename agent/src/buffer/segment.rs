//! One record of a buffer segment file, on disk:
//!
//! ```text
//! len   u32 LE   bytes of the body
//! crc   u32 LE   CRC-32 (IEEE) of the body
//! body           seq u64 LE, kind u8, payload (JSON text of the snapshot or event)
//! ```
//!
//! A segment is records back to back. A crash can leave a record half
//! written at a segment's end (a torn tail): [`scan`] stops at the first
//! record that does not read whole with its checksum, and the buffer cuts
//! the file there.

/// Bytes before the body: length and checksum.
pub const HEADER: usize = 8;
/// Bytes of the body before the payload: sequence number and kind.
pub const BODY_HEAD: usize = 9;

/// A record's place in its segment, as [`scan`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Its sequence number.
    pub seq: u64,
    /// Its kind byte.
    pub kind: u8,
    /// Offset of its header in the segment.
    pub off: u64,
    /// Its bytes on disk, header included.
    pub len: u32,
}

/// The bytes of one record.
pub fn encode(seq: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
    let body_len = BODY_HEAD + payload.len();
    let mut out = Vec::with_capacity(HEADER + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[HEADER..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Read the record at the start of `bytes`: (seq, kind, payload, bytes
/// taken). `None` when it is short, longer than `max_record`, or its
/// checksum does not match.
pub fn decode(bytes: &[u8], max_record: usize) -> Option<(u64, u8, &[u8], usize)> {
    let body_len = u32_at(bytes, 0)? as usize;
    if !(BODY_HEAD..=max_record).contains(&body_len) {
        return None;
    }
    let crc = u32_at(bytes, 4)?;
    let body = bytes.get(HEADER..HEADER + body_len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(body[..8].try_into().ok()?);
    Some((seq, body[8], &body[BODY_HEAD..], HEADER + body_len))
}

/// The records of a segment's bytes in order, and how many bytes they
/// take: past that is a torn or damaged tail. A record whose sequence
/// number does not exceed the one before it also ends the good part.
pub fn scan(bytes: &[u8], max_record: usize) -> (Vec<Found>, usize) {
    let mut out: Vec<Found> = Vec::new();
    let mut at = 0;
    while let Some((seq, kind, _, n)) = decode(&bytes[at..], max_record) {
        if out.last().is_some_and(|l| l.seq >= seq) {
            break;
        }
        out.push(Found {
            seq,
            kind,
            off: at as u64,
            len: n as u32,
        });
        at += n;
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_a_torn_or_flipped_tail_ends_the_scan() {
        let mut seg = encode(1, 1, b"{\"a\":1}");
        seg.extend(encode(2, 2, b"{\"b\":2}"));
        let good = seg.len();
        let (found, n) = scan(&seg, 1 << 20);
        assert_eq!(n, good);
        assert_eq!(found.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 2]);
        let (seq, kind, payload, _) = decode(&seg[found[1].off as usize..], 1 << 20).unwrap();
        assert_eq!((seq, kind, payload), (2, 2, &b"{\"b\":2}"[..]));
        // Torn: half a record after the good ones.
        let third = encode(3, 1, b"{\"c\":3}");
        let mut torn = seg.clone();
        torn.extend_from_slice(&third[..third.len() - 3]);
        assert_eq!(scan(&torn, 1 << 20).1, good);
        // A flipped byte in the last record: its checksum fails.
        let mut flipped = seg.clone();
        flipped.extend(third);
        let last = flipped.len() - 2;
        flipped[last] ^= 0x40;
        assert_eq!(scan(&flipped, 1 << 20).1, good);
        // A length past the bound, and garbage.
        assert_eq!(scan(&[0xff; 64], 1 << 20).1, 0);
        assert_eq!(scan(&[], 1 << 20).1, 0);
    }
}
