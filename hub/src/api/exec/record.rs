//! A TTY session's recording in asciicast v2 (what `asciinema play` plays):
//! a header line, then `[seconds, "o", text]` for output, `"r"` for resizes
//! and, only where the hub is configured for it, `"i"` for input (it may
//! hold passwords). Written to the store in pieces as the session runs;
//! bounded by `max_bytes`, past which a visible mark ends the recording.

use std::time::Instant;

use nextdeploy_shared::time::now_unix;
use serde_json::json;

use crate::limits::{RECORDING_CHUNK, RECORDING_FLUSH_EVERY, RECORDING_MARK_RESERVE};
use crate::store::{self, SharedStore};

/// How the hub records exec sessions.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// Record TTY sessions at all (on by default).
    pub enabled: bool,
    /// Record input too (off by default: it may hold passwords).
    pub record_input: bool,
    /// Bound of one session's recording, bytes.
    pub max_bytes: u64,
    /// Bound of all recordings, bytes; the oldest go first.
    pub total_bytes: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: true,
            record_input: false,
            max_bytes: crate::limits::DEFAULT_RECORDING_MAX_BYTES,
            total_bytes: crate::limits::DEFAULT_RECORDINGS_TOTAL_BYTES,
        }
    }
}

/// The hub's flags for recordings.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordingArgs {
    /// Record exec sessions with a TTY (asciicast v2, in the store): on or off.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub exec_recording: String,
    /// Record what people type into exec sessions too (it may hold
    /// passwords; off by default).
    #[arg(long)]
    pub exec_record_input: bool,
    /// Largest recording of one session, bytes; a mark ends it there.
    #[arg(long, default_value_t = crate::limits::DEFAULT_RECORDING_MAX_BYTES)]
    pub exec_recording_max_bytes: u64,
    /// All recordings together at most, bytes; the oldest are dropped.
    #[arg(long, default_value_t = crate::limits::DEFAULT_RECORDINGS_TOTAL_BYTES)]
    pub exec_recordings_total_bytes: u64,
}

impl RecordingArgs {
    /// The configuration they make.
    pub fn config(&self) -> RecordingConfig {
        RecordingConfig {
            enabled: self.exec_recording == "on",
            record_input: self.exec_record_input,
            max_bytes: self.exec_recording_max_bytes,
            total_bytes: self.exec_recordings_total_bytes,
        }
    }
}

/// One session's recorder.
pub struct Recorder {
    store: SharedStore,
    id: String,
    started: Instant,
    buf: Vec<u8>,
    written: u64,
    max: u64,
    record_input: bool,
    /// The truncation mark was written.
    pub truncated: bool,
    last_flush: Instant,
    /// Bytes of an output character cut by a chunk's end.
    carry: Vec<u8>,
}

impl Recorder {
    /// A recording of session `id`, its header written.
    pub fn new(
        store: SharedStore,
        id: &str,
        cfg: &RecordingConfig,
        size: (u16, u16),
        command: &str,
    ) -> Recorder {
        let header = json!({
            "version": 2,
            "width": size.0,
            "height": size.1,
            "timestamp": now_unix(),
            "command": command,
            "env": {"TERM": "xterm-256color"},
        });
        let mut buf = header.to_string().into_bytes();
        buf.push(b'\n');
        Recorder {
            store,
            id: id.to_string(),
            started: Instant::now(),
            buf,
            written: 0,
            max: cfg.max_bytes.max(RECORDING_MARK_RESERVE * 2),
            record_input: cfg.record_input,
            truncated: false,
            last_flush: Instant::now(),
            carry: Vec::new(),
        }
    }

    /// Output the session printed.
    pub fn output(&mut self, bytes: &[u8]) {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        let cut = incomplete_tail(&data);
        self.carry = data.split_off(data.len() - cut);
        let text = String::from_utf8_lossy(&data).into_owned();
        self.event("o", &text);
    }

    /// Input sent to the session (kept only when configured).
    pub fn input(&mut self, bytes: &[u8]) {
        if self.record_input {
            self.event("i", &String::from_utf8_lossy(bytes));
        }
    }

    /// The terminal's new size.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.event("r", &format!("{cols}x{rows}"));
    }

    fn event(&mut self, kind: &str, text: &str) {
        if self.truncated || text.is_empty() {
            return;
        }
        let t = self.started.elapsed().as_secs_f64();
        let line = format!("{}\n", json!([(t * 1e6).round() / 1e6, kind, text]));
        let size = self.written + self.buf.len() as u64 + line.len() as u64;
        if size + RECORDING_MARK_RESERVE > self.max {
            let mark = format!(
                "\r\n[nextdeploy: recording truncated at its limit of {} bytes]\r\n",
                self.max
            );
            self.buf
                .extend(format!("{}\n", json!([(t * 1e6).round() / 1e6, "o", mark])).bytes());
            self.truncated = true;
            return;
        }
        self.buf.extend_from_slice(line.as_bytes());
    }

    /// Write what is buffered if a piece is full or a second has passed.
    pub async fn flush_if_due(&mut self) {
        if self.buf.len() >= RECORDING_CHUNK || self.last_flush.elapsed() >= RECORDING_FLUSH_EVERY {
            self.flush().await;
        }
    }

    /// Write what is buffered.
    pub async fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.buf.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.buf);
        self.written += data.len() as u64;
        let id = self.id.clone();
        let write = move |s: &dyn store::Store| s.append_exec_recording(&id, &data);
        if let Err(e) = store::blocking(&self.store, write).await {
            tracing::warn!(error = %e, session = %self.id, "recording write failed");
        }
    }
}

/// How many bytes at the end of `b` start a UTF-8 character that is not
/// complete yet (0 to 3): a lead byte within the last three whose sequence
/// needs more bytes than follow it.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let byte = b[b.len() - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let need = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_cut_by_a_chunk_waits_for_its_end() {
        let e = "é".as_bytes();
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&[b'a', e[0]]), 1);
        assert_eq!(incomplete_tail(&[0xff, b'a', e[0]]), 1);
        assert_eq!(incomplete_tail(&[0xff, b'a']), 0);
        assert_eq!(incomplete_tail("aé".as_bytes()), 0);
        let euro = "€".as_bytes();
        assert_eq!(incomplete_tail(&euro[..2]), 2);
    }

    #[tokio::test]
    async fn recordings_are_asciicast_and_stop_with_a_mark() {
        let store: SharedStore =
            std::sync::Arc::new(crate::store::sqlite::SqliteStore::in_memory().unwrap());
        let cfg = RecordingConfig {
            max_bytes: 1024,
            ..Default::default()
        };
        let session = crate::store::exec::NewSession {
            id: "s1".into(),
            actor: "a".into(),
            token_id: "t".into(),
            server: "srv".into(),
            container: "c".into(),
            command: "sh".into(),
            tty: true,
            started: 1,
        };
        store.insert_exec_session(&session).unwrap();
        let mut r = Recorder::new(store.clone(), "s1", &cfg, (80, 24), "sh");
        let e = "é".as_bytes();
        r.output(&[b'h', e[0]]);
        r.output(&[e[1], b'\n']);
        r.input(b"secret");
        r.resize(100, 30);
        for _ in 0..100 {
            r.output(b"0123456789");
        }
        r.flush().await;
        assert!(r.truncated);
        let text: Vec<u8> = store.exec_recording("s1").unwrap().concat();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 80);
        assert_eq!(lines[1][1], "o");
        assert_eq!(lines[1][2], "h");
        assert_eq!(lines[2][2], "é\n");
        assert_eq!(lines[3][1], "r");
        assert_eq!(lines[3][2], "100x30");
        assert!(!text.contains("secret"));
        assert!(lines.last().unwrap()[2]
            .as_str()
            .unwrap()
            .contains("recording truncated"));
        assert!(text.len() <= 1024, "{}", text.len());
    }
}
