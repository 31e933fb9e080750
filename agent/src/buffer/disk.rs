//! [`Buffer`]: the records not acknowledged by the hub, in segment files of
//! the buffer's directory (0700; files 0600), with their index in memory.
//!
//! - `id`: the buffer's random id, made with it. A directory without one
//!   (a fresh agent, a lost buffer) starts over: new id, no segments.
//! - `<first seq, 20 digits>.seg`: records ([`super::segment`]) with
//!   increasing sequence numbers; the newest segment takes appends. Its
//!   name keeps the next sequence number when every record has been
//!   acknowledged and removed, so numbers never go back across restarts.
//!
//! Over the bound, the oldest segments are thinned first: every other
//! snapshot of the least-thinned oldest segment, again and again, events
//! kept; only when no old segment holds a snapshot are whole segments of
//! events dropped. Every drop is counted.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nextdeploy_shared::limits::MAX_FRAME_LEN;
use rand::RngExt;
use tracing::warn;

use super::segment::{self, Found};
use super::Kind;
use crate::limits::BUFFER_SEGMENTS;

/// Largest record body read back: a frame's worth, plus its head.
const MAX_RECORD: usize = MAX_FRAME_LEN + segment::BODY_HEAD;

/// One record not acknowledged yet.
#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    kind: Kind,
    /// The segment holding it (its name).
    seg: u64,
    off: u64,
    len: u32,
}

#[derive(Debug)]
struct Segment {
    size: u64,
    /// Thinning passes made over it.
    thinned: u32,
}

/// A record read back for the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its sequence number.
    pub seq: u64,
    /// Snapshot or event.
    pub kind: Kind,
    /// Its JSON text (the `data` of the frame that carries it).
    pub payload: Vec<u8>,
}

/// The on-disk buffer (used under the [`super::Recorder`]'s lock).
#[derive(Debug)]
pub struct Buffer {
    dir: PathBuf,
    id: String,
    max_bytes: u64,
    segment_bytes: u64,
    next_seq: u64,
    segments: BTreeMap<u64, Segment>,
    entries: VecDeque<Entry>,
    bytes: u64,
    active: File,
    /// Snapshots thinned out since open.
    pub dropped_snapshots: u64,
    /// Events dropped since open.
    pub dropped_events: u64,
}

fn seg_path(dir: &Path, name: u64) -> PathBuf {
    dir.join(format!("{name:020}.seg"))
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The segment names in `dir`, sorted.
fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            names.push(n);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// The buffer's id, or a new one (and no segments) when there is none.
fn load_id(dir: &Path) -> io::Result<String> {
    let path = dir.join("id");
    if let Ok(id) = fs::read_to_string(&path) {
        let id = id.trim();
        if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id.to_string());
        }
    }
    for name in list_segments(dir)? {
        fs::remove_file(seg_path(dir, name))?;
    }
    let id = format!("{:016x}", rand::rng().random::<u64>());
    let tmp = dir.join("id.tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(id.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(id)
}

impl Buffer {
    /// Open (or make) the buffer in `dir`, bounded by `max_bytes`; torn
    /// tails are cut.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Buffer> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // Also when it was there already: it holds what containers did.
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let id = load_id(dir)?;
        let mut segments = BTreeMap::new();
        let mut entries = VecDeque::new();
        let mut next_seq = 1;
        let mut bytes = 0;
        for name in list_segments(dir)? {
            let path = seg_path(dir, name);
            let data = fs::read(&path)?;
            let (found, good) = segment::scan(&data, MAX_RECORD);
            if good < data.len() {
                warn!(file = %path.display(), kept = good, cut = data.len() - good, "buffer segment has a torn or damaged tail; cut");
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(good as u64)?;
            }
            next_seq = next_seq.max(name);
            for f in found {
                let Some(kind) = Kind::from_byte(f.kind).filter(|_| f.seq >= next_seq) else {
                    continue;
                };
                next_seq = f.seq + 1;
                entries.push_back(entry(f, kind, name));
            }
            bytes += good as u64;
            segments.insert(
                name,
                Segment {
                    size: good as u64,
                    thinned: 0,
                },
            );
        }
        if segments.is_empty() {
            segments.insert(
                next_seq,
                Segment {
                    size: 0,
                    thinned: 0,
                },
            );
        }
        let last = segments.keys().next_back().copied().unwrap_or(next_seq);
        let active = open_append(&seg_path(dir, last))?;
        Ok(Buffer {
            dir: dir.to_path_buf(),
            id,
            segment_bytes: (max_bytes / BUFFER_SEGMENTS).max(MAX_RECORD as u64 / 4),
            max_bytes,
            next_seq,
            segments,
            entries,
            bytes,
            active,
            dropped_snapshots: 0,
            dropped_events: 0,
        })
    }

    /// The buffer's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Records not acknowledged.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether every record was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append a record whose payload `make` writes for its sequence number;
    /// returns that number. Makes room first (see the module doc). A record
    /// larger than the whole bound is dropped (`None`).
    pub fn append(
        &mut self,
        kind: Kind,
        make: impl FnOnce(u64) -> Vec<u8>,
    ) -> io::Result<Option<u64>> {
        let seq = self.next_seq;
        let rec = segment::encode(seq, kind as u8, &make(seq));
        let n = rec.len() as u64;
        self.next_seq += 1;
        if n > self.max_bytes / 2 || rec.len() > MAX_RECORD + segment::HEADER {
            self.count_drop(kind);
            return Ok(None);
        }
        if self.active_size() > 0 && self.active_size() + n > self.segment_bytes {
            self.roll(seq)?;
        }
        while self.bytes + n > self.max_bytes {
            if !self.shed_one(seq)? {
                break;
            }
        }
        let name = self.active_name();
        self.active.write_all(&rec)?;
        let seg = self.segments.entry(name).or_insert(Segment {
            size: 0,
            thinned: 0,
        });
        let off = seg.size;
        seg.size += n;
        self.bytes += n;
        self.entries.push_back(Entry {
            seq,
            kind,
            seg: name,
            off,
            len: n as u32,
        });
        Ok(Some(seq))
    }

    fn active_name(&self) -> u64 {
        self.segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.next_seq)
    }

    fn active_size(&self) -> u64 {
        self.segments.values().next_back().map_or(0, |s| s.size)
    }

    /// Start a new active segment named `name`.
    fn roll(&mut self, name: u64) -> io::Result<()> {
        self.active = open_append(&seg_path(&self.dir, name))?;
        self.segments.insert(
            name,
            Segment {
                size: 0,
                thinned: 0,
            },
        );
        Ok(())
    }

    fn count_drop(&mut self, kind: Kind) {
        match kind {
            Kind::Health => self.dropped_snapshots += 1,
            Kind::Event => self.dropped_events += 1,
        }
    }

    /// Snapshots held by each segment but the active one.
    fn snapshots_by_segment(&self) -> BTreeMap<u64, usize> {
        let active = self.active_name();
        let mut out: BTreeMap<u64, usize> = self
            .segments
            .keys()
            .filter(|n| **n != active)
            .map(|n| (*n, 0))
            .collect();
        for e in self.entries.iter().filter(|e| e.kind == Kind::Health) {
            if let Some(c) = out.get_mut(&e.seg) {
                *c += 1;
            }
        }
        out
    }

    /// Free some room (one thinning or one segment); `false` when nothing
    /// is left to free. `next`: the sequence number about to be written.
    fn shed_one(&mut self, next: u64) -> io::Result<bool> {
        let counts = self.snapshots_by_segment();
        let thinnable = counts
            .iter()
            .filter(|(_, c)| **c >= 2)
            .min_by_key(|(n, _)| (self.segments.get(n).map_or(0, |s| s.thinned), **n))
            .map(|(n, _)| *n);
        if let Some(name) = thinnable {
            self.rewrite(name, true)?;
        } else if let Some((name, _)) = counts.iter().find(|(_, c)| **c > 0) {
            self.rewrite(*name, false)?;
        } else if let Some(name) = counts.keys().next().copied() {
            let events = self.entries.iter().filter(|e| e.seg == name).count() as u64;
            self.dropped_events += events;
            warn!(events, "buffer full of events: dropped its oldest segment");
            self.remove_segment(name)?;
        } else if self.active_size() > 0 {
            self.roll(next)?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Rewrite segment `name` without every other of its snapshots
    /// (`every_other`) or without all of them; events stay.
    fn rewrite(&mut self, name: u64, every_other: bool) -> io::Result<()> {
        let path = seg_path(&self.dir, name);
        let old = fs::read(&path)?;
        let mut nth = 0usize;
        let mut out = Vec::with_capacity(old.len() / 2);
        let mut dropped = 0u64;
        let mut kept = VecDeque::with_capacity(self.entries.len());
        for mut e in self.entries.drain(..) {
            if e.seg != name {
                kept.push_back(e);
                continue;
            }
            let drop = e.kind == Kind::Health && {
                nth += 1;
                !every_other || nth.is_multiple_of(2)
            };
            let bytes = old.get(e.off as usize..(e.off + u64::from(e.len)) as usize);
            match bytes {
                Some(b) if !drop => {
                    e.off = out.len() as u64;
                    out.extend_from_slice(b);
                    kept.push_back(e);
                }
                _ => dropped += 1,
            }
        }
        self.entries = kept;
        self.dropped_snapshots += dropped;
        let tmp = path.with_extension("tmp");
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&out)?;
        fs::rename(&tmp, &path)?;
        if let Some(seg) = self.segments.get_mut(&name) {
            self.bytes = self.bytes - seg.size + out.len() as u64;
            seg.size = out.len() as u64;
            seg.thinned += 1;
        }
        Ok(())
    }

    fn remove_segment(&mut self, name: u64) -> io::Result<()> {
        self.entries.retain(|e| e.seg != name);
        if let Some(seg) = self.segments.remove(&name) {
            self.bytes -= seg.size;
        }
        match fs::remove_file(seg_path(&self.dir, name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The hub holds every record in `ranges` (inclusive, sorted): forget
    /// them, delete segments left without a record, and start a new active
    /// segment when the current one holds only acknowledged records.
    pub fn ack(&mut self, ranges: &[[u64; 2]]) -> io::Result<()> {
        let covered = |seq: u64| {
            let i = ranges.partition_point(|r| r[1] < seq);
            ranges.get(i).is_some_and(|r| r[0] <= seq)
        };
        self.entries.retain(|e| !covered(e.seq));
        let active = self.active_name();
        let empty: Vec<u64> = self
            .segments
            .keys()
            .filter(|n| **n != active && !self.entries.iter().any(|e| e.seg == **n))
            .copied()
            .collect();
        for name in empty {
            self.remove_segment(name)?;
        }
        if self.active_size() > 0 && !self.entries.iter().any(|e| e.seg == active) {
            self.roll(self.next_seq)?;
            self.remove_segment(active)?;
        }
        Ok(())
    }

    /// Records with `after < seq < below`, oldest first, up to about
    /// `budget` bytes (at least one).
    pub fn read(&self, after: u64, below: u64, budget: usize) -> io::Result<Vec<Stored>> {
        let start = self.entries.partition_point(|e| e.seq <= after);
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut file: Option<(u64, File)> = None;
        for e in self.entries.range(start..) {
            if e.seq >= below || (!out.is_empty() && used + e.len as usize > budget) {
                break;
            }
            if file.as_ref().is_none_or(|(n, _)| *n != e.seg) {
                file = Some((e.seg, File::open(seg_path(&self.dir, e.seg))?));
            }
            let Some((_, f)) = &file else { break };
            let mut buf = vec![0; e.len as usize];
            f.read_exact_at(&mut buf, e.off)?;
            let Some((seq, _, payload, _)) = segment::decode(&buf, MAX_RECORD) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("buffer record {} does not read back", e.seq),
                ));
            };
            used += e.len as usize;
            out.push(Stored {
                seq,
                kind: e.kind,
                payload: payload.to_vec(),
            });
        }
        Ok(out)
    }

    /// Whether a record with `after < seq < below` is held.
    pub fn has_between(&self, after: u64, below: u64) -> bool {
        let start = self.entries.partition_point(|e| e.seq <= after);
        self.entries.get(start).is_some_and(|e| e.seq < below)
    }

    /// Sequence numbers held (for tests and stats).
    pub fn seqs(&self) -> Vec<u64> {
        self.entries.iter().map(|e| e.seq).collect()
    }

    /// Kinds held, oldest first (for tests).
    pub fn kinds(&self) -> Vec<Kind> {
        self.entries.iter().map(|e| e.kind).collect()
    }
}

fn entry(f: Found, kind: Kind, seg: u64) -> Entry {
    Entry {
        seq: f.seq,
        kind,
        seg,
        off: f.off,
        len: f.len,
    }
}
