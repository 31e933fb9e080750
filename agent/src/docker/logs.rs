//! Logs, byte-exact: stdout and stderr kept apart, TTY output as stdout, bytes
//! that are not UTF-8 sent as base64, and the engine's pieces of a long line
//! (16 KiB frames) joined again. Each `log` reply carries whole lines of one
//! stream; a line still open is flushed after a short pause (follow mode) or
//! when it grows past [`LOG_MAX_PENDING`]. Dropping the future (the hub closed the
//! channel) drops the engine's stream: no orphan stream is left in dockerd.

use base64::Engine as _;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use nextdeploy_shared::json;
use nextdeploy_shared::protocol::containers::{LogsRequest, Tail};
use nextdeploy_shared::protocol::{RawData, Reply, ReplyType};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::containers::resolve;
use super::{classify, DockerError, Engine};
use crate::limits::{LOG_BATCH, LOG_FLUSH_AFTER, LOG_MAX_PENDING};

/// A `log` reply for one chunk: text written straight to JSON
/// ([`nextdeploy_shared::json`]), bytes that are not UTF-8 as base64.
pub fn make_log_reply(id: Option<u64>, stream: &str, bytes: &[u8]) -> Reply {
    match std::str::from_utf8(bytes) {
        Ok(text) => Reply::raw(
            id,
            ReplyType::Log,
            RawData::Written(json::text_object(&[("stream", stream), ("text", text)])),
        ),
        Err(_) => Reply::new(id, ReplyType::Log, encode_chunk(stream, bytes)),
    }
}

/// The `data` of one `log` reply, as a [`Value`].
pub fn encode_chunk(stream: &str, bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "stream": stream, "text": text }),
        Err(_) => {
            json!({ "stream": stream, "b64": base64::engine::general_purpose::STANDARD.encode(bytes) })
        }
    }
}

/// Per-stream line assembly.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Append and take every complete line (in batches), plus an oversized remainder.
    fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        if let Some(last_nl) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(last_nl + 1);
            let whole = std::mem::replace(&mut self.pending, rest);
            // Batch whole lines into pieces of about LOG_BATCH bytes, cut at newlines.
            let mut start = 0;
            while start < whole.len() {
                let mut end = (start + LOG_BATCH).min(whole.len());
                if end < whole.len() {
                    end = whole[end..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map(|p| end + p + 1)
                        .unwrap_or(whole.len());
                }
                out.push(whole[start..end].to_vec());
                start = end;
            }
        }
        while self.pending.len() >= LOG_MAX_PENDING {
            let rest = self.pending.split_off(LOG_MAX_PENDING);
            out.push(std::mem::replace(&mut self.pending, rest));
        }
        out
    }

    fn take(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

/// A unix time as the Docker API takes it (0: no bound).
fn to_unix_i32(t: Option<i64>) -> i32 {
    t.map(|v| v.clamp(0, i32::MAX as i64) as i32).unwrap_or(0)
}

/// Stream the logs of `payload.container` to `out`; ends with `end` or `error`.
pub async fn stream_logs(
    engine: &Engine,
    id: Option<u64>,
    p: &LogsRequest,
    out: &mpsc::Sender<Reply>,
) -> Result<(), DockerError> {
    let target = resolve(engine, &p.container).await?;
    let opts = LogsOptions {
        follow: p.follow,
        stdout: true,
        stderr: true,
        since: to_unix_i32(p.since),
        until: to_unix_i32(p.until),
        timestamps: p.timestamps,
        tail: p.tail.unwrap_or(Tail::All).as_docker(),
    };
    let docker = engine.docker().await?;
    let mut stream = docker.logs(&target.id, Some(opts));
    let mut stdout = Lines::default();
    let mut stderr = Lines::default();
    let send = |name: &'static str, bytes: Vec<u8>| {
        let out = out.clone();
        async move { out.send(make_log_reply(id, name, &bytes)).await.is_ok() }
    };
    loop {
        let next = if stdout.pending.is_empty() && stderr.pending.is_empty() {
            stream.next().await
        } else {
            match tokio::time::timeout(LOG_FLUSH_AFTER, stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    for (name, lines) in [("stdout", &mut stdout), ("stderr", &mut stderr)] {
                        if let Some(b) = lines.take() {
                            if !send(name, b).await {
                                return Ok(());
                            }
                        }
                    }
                    continue;
                }
            }
        };
        let (name, lines, message) = match next {
            None => break,
            Some(Err(e)) => {
                let err = classify(&e);
                engine.failed(&err);
                return Err(err);
            }
            Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                ("stdout", &mut stdout, message)
            }
            Some(Ok(LogOutput::StdErr { message })) => ("stderr", &mut stderr, message),
            Some(Ok(LogOutput::StdIn { .. })) => continue,
        };
        for piece in lines.push(&message) {
            if !send(name, piece).await {
                return Ok(());
            }
        }
    }
    for (name, lines) in [("stdout", &mut stdout), ("stderr", &mut stderr)] {
        if let Some(b) = lines.take() {
            if !send(name, b).await {
                return Ok(());
            }
        }
    }
    let _ = out.send(Reply::end(id)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_pieces_of_a_long_line() {
        let mut l = Lines::default();
        assert!(l.push(&[b'a'; 16384]).is_empty());
        assert!(l.push(&[b'a'; 16384]).is_empty());
        let out = l.push(b"aa\nb");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 32771);
        assert_eq!(l.take().unwrap(), b"b");
    }

    #[test]
    fn batches_cut_at_newlines() {
        let mut l = Lines::default();
        let line = [b"x".repeat(1000), b"\n".to_vec()].concat();
        let many: Vec<u8> = line.repeat(200);
        let out = l.push(&many);
        assert!(out.len() > 1);
        assert!(out.iter().all(|p| p.ends_with(b"\n")));
        assert_eq!(out.concat(), many);
    }

    #[test]
    fn oversized_unterminated_line_is_flushed() {
        let mut l = Lines::default();
        let out = l.push(&vec![b'z'; LOG_MAX_PENDING + 10]);
        assert_eq!(out.len(), 1);
        assert_eq!(l.take().unwrap().len(), 10);
    }

    #[test]
    fn non_utf8_goes_base64() {
        let v = encode_chunk("stderr", &[0xff, 0xfe, b'\n']);
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["b64"], "//4K");
        assert_eq!(encode_chunk("stdout", b"hi\n")["text"], "hi\n");
    }

    /// Text goes out as written JSON that says what `encode_chunk` says; bytes
    /// that are not UTF-8 still go as base64.
    #[test]
    fn log_reply_carries_the_same_data_as_text() {
        let text = "line \"one\"\n\tzwei ✓\n";
        let r = make_log_reply(Some(7), "stdout", text.as_bytes());
        let raw = r.raw_data.as_ref().expect("text goes raw");
        let data: Value = serde_json::from_str(raw.text()).unwrap();
        assert_eq!(data, encode_chunk("stdout", text.as_bytes()));
        let b = make_log_reply(Some(7), "stderr", &[0xff, b'\n']);
        assert!(b.raw_data.is_none());
        assert_eq!(b.data["b64"], "/wo=");
    }
}
