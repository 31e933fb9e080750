//! An HTTP receiver on loopback for notifications (webhook, Slack and the
//! other channels): std `TcpListener`, one request per connection, every
//! request recorded with its headers, body and the status it was answered
//! with; it can be told to answer 500 for a while. Its helpers panic on a
//! broken receiver: that fails the test that uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::wait_until;

/// Fire, deliver, or resolve: events arrive within a second; a retry after
/// a minute's outage within 64 s of backoff (1 s doubling).
pub const RECEIVE_WAIT: Duration = Duration::from_secs(60);

/// One request the receiver took.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request line's target (`/hook/abc/message`).
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header (lower-case name), or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// The webhook receiver.
pub struct Receiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

/// One request: its target, headers (lower-case names) and body.
pub fn read_request(s: &mut TcpStream) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, headers, body))
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (g, st) = (got.clone(), status.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let Some((path, headers, body)) = read_request(&mut s) else {
                    continue;
                };
                let answered = st.load(Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes());
                g.lock().unwrap().push(Received {
                    path,
                    headers,
                    body,
                    answered,
                });
            }
        });
        Receiver { port, got, status }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook/abc", self.port)
    }

    pub fn answer(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    /// Requests answered 2xx: what was delivered.
    pub fn delivered(&self) -> Vec<Received> {
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|r| (200..300).contains(&r.answered))
            .cloned()
            .collect()
    }

    pub fn refused(&self) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.answered >= 500)
            .count()
    }

    /// Delivered notifications whose body matches, once at least `n` are there.
    pub fn wait_for(&self, what: &str, n: usize, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        wait_until(what, RECEIVE_WAIT, Duration::from_millis(200), || {
            let hits: Vec<Value> = self
                .delivered()
                .iter()
                .map(Received::json)
                .filter(|v| f(v))
                .collect();
            Ok((hits.len() >= n).then_some(hits))
        })
        .unwrap()
    }

    /// Delivered requests that match, whatever their body, once at least
    /// `n` are there.
    pub fn wait_for_raw(
        &self,
        what: &str,
        n: usize,
        f: impl Fn(&Received) -> bool,
    ) -> Vec<Received> {
        wait_until(what, RECEIVE_WAIT, Duration::from_millis(200), || {
            let hits: Vec<Received> = self.delivered().into_iter().filter(|r| f(r)).collect();
            Ok((hits.len() >= n).then_some(hits))
        })
        .unwrap()
    }
}

/// HMAC-SHA256 by Python's standard library: a check that owes nothing to
/// the hub's code.
pub fn python_hmac(secret: &str, body: &[u8]) -> String {
    let script = "import hmac,hashlib,sys; k=sys.argv[1].encode(); \
                  print(hmac.new(k, sys.stdin.buffer.read(), hashlib.sha256).hexdigest())";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    format!("sha256={}", String::from_utf8_lossy(&out.stdout).trim())
}
