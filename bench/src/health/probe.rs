//! The latencies the `health` scenario takes, idle and while the fleet
//! ingests: a WebSocket API request on a fresh connection (authentication
//! included), `history` reads, and a fresh simulated agent's connect.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use crate::sim;
use crate::wsclient::Ws;

/// How long one request (connect included) may take before the run fails.
const REQUEST_LIMIT: Duration = Duration::from_secs(60);
/// How long a probe agent may take to say hello before the run fails.
const CONNECT_LIMIT: Duration = Duration::from_secs(60);
/// After a probe agent is dropped, before the next one starts.
const BETWEEN_CONNECTS: Duration = Duration::from_millis(200);
/// 30 days and 24 hours, in seconds (the `history` look-backs).
const DAYS_30_S: u64 = 30 * 86_400;
const HOURS_24_S: u64 = 86_400;

/// Median and largest of some timings, in ms.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spread {
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// Of `ms` (empty: zeros).
    pub fn of(mut ms: Vec<f64>) -> Spread {
        ms.sort_by(f64::total_cmp);
        Spread {
            median: ms.get(ms.len() / 2).copied().unwrap_or(0.0),
            max: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// Send `req` (its `id` set to `id`) and wait for its `result`; its size in bytes.
async fn request(ws: &mut Ws, id: u64, mut req: Value) -> anyhow::Result<usize> {
    req["id"] = json!(id);
    ws.send(&req).await?;
    tokio::time::timeout(REQUEST_LIMIT, async {
        loop {
            let (e, bytes) = ws.recv().await?;
            if e.id == Some(id) && e.kind == "result" {
                return anyhow::Ok(bytes);
            }
        }
    })
    .await
    .with_context(|| format!("no result for {req} within {REQUEST_LIMIT:?}"))?
}

/// `n` times: a fresh WebSocket connection (the token checked against the
/// store) and one `status {summary}` for `server` (the enrolled agents read
/// from the store); the time of each, connect included.
pub async fn ws_requests(
    http: SocketAddr,
    token: &str,
    server: &str,
    n: usize,
) -> anyhow::Result<Spread> {
    let req = json!({"action": "status", "server": server, "payload": {"summary": true}});
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        let mut ws = Ws::connect(http, token).await?;
        request(&mut ws, i as u64 + 1, req.clone()).await?;
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Spread::of(ms))
}

/// A `history` request for `container` of `server`.
fn history(server: &str, container: &str, since_s: u64, resolution: &str) -> Value {
    json!({"action": "history", "server": server,
           "payload": {"container": container, "since": since_s, "resolution": resolution}})
}

/// A `history` read's median time over its runs and the bytes one run received.
#[derive(Clone, Copy, Debug, Default)]
pub struct Read {
    pub ms: f64,
    pub bytes: usize,
}

/// `runs` reads of 30 days of `container` at 15 minutes.
pub async fn history_30d(
    ws: &mut Ws,
    server: &str,
    container: &str,
    runs: usize,
) -> anyhow::Result<Read> {
    let (mut ms, mut bytes) = (Vec::with_capacity(runs), 0);
    for i in 0..runs {
        let t0 = Instant::now();
        bytes = request(
            ws,
            1000 + i as u64,
            history(server, container, DAYS_30_S, "15m"),
        )
        .await?;
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Read {
        ms: Spread::of(ms).median,
        bytes,
    })
}

/// `runs` reads of 24 hours at 1 minute of every one of `containers` of
/// `server`, one after another (a run is their sum).
pub async fn history_24h(
    ws: &mut Ws,
    server: &str,
    containers: &[String],
    runs: usize,
) -> anyhow::Result<Read> {
    let (mut ms, mut bytes) = (Vec::with_capacity(runs), 0);
    let mut id = 2000;
    for _ in 0..runs {
        let t0 = Instant::now();
        bytes = 0;
        for c in containers {
            id += 1;
            bytes += request(ws, id, history(server, c, HOURS_24_S, "1m")).await?;
        }
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Read {
        ms: Spread::of(ms).median,
        bytes,
    })
}

/// Agents `from..from + n` connected one at a time (each disconnected
/// before the next), in ms.
pub async fn connects(cfg: &sim::SimConfig, from: usize, n: usize) -> anyhow::Result<Spread> {
    let mut ms = Vec::with_capacity(n);
    for i in from..from + n {
        ms.push(
            sim::time_connect(i, cfg, CONNECT_LIMIT)
                .await?
                .as_secs_f64()
                * 1000.0,
        );
        tokio::time::sleep(BETWEEN_CONNECTS).await;
    }
    Ok(Spread::of(ms))
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn spread_is_the_median_and_the_largest() {
        let s = Spread::of(vec![5.0, 1.0, 9.0, 3.0, 7.0]);
        assert_eq!((s.median, s.max), (5.0, 9.0));
        let e = Spread::of(Vec::new());
        assert_eq!((e.median, e.max), (0.0, 0.0));
    }
}
