//! `/metrics` scraped while the fleet ingests (issue 22: the scrape's time
//! and size at 10,000 agents x 20 containers): a plain HTTP/1.1 GET with the
//! admin token (the bench's hub runs with `--plain-http`), read to the end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::probe::Spread;

/// How long one scrape may take before the run fails.
const SCRAPE_LIMIT: Duration = Duration::from_secs(120);

/// Scrapes' times and the last one's size.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scrape {
    pub ms: Spread,
    pub bytes: usize,
    pub series: usize,
}

/// `runs` scrapes of `/metrics`, one after another.
pub async fn scrapes(http: SocketAddr, token: &str, runs: usize) -> anyhow::Result<Scrape> {
    let (mut ms, mut last) = (Vec::with_capacity(runs), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        last = tokio::time::timeout(SCRAPE_LIMIT, get(http, token))
            .await
            .with_context(|| format!("no /metrics within {SCRAPE_LIMIT:?}"))??;
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Scrape {
        ms: Spread::of(ms),
        bytes: last.len(),
        series: series(&last),
    })
}

/// The body of one `GET /metrics`.
async fn get(http: SocketAddr, token: &str) -> anyhow::Result<Vec<u8>> {
    let mut s = TcpStream::connect(http).await?;
    let req = format!(
        "GET /metrics HTTP/1.1\r\nhost: {http}\r\nauthorization: Bearer {token}\r\n\
         connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).await?;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the /metrics answer")?;
    let head = String::from_utf8_lossy(&all[..head_end]);
    if !head.starts_with("HTTP/1.1 200") {
        bail!("/metrics answered {}", head.lines().next().unwrap_or(""));
    }
    Ok(all.split_off(head_end + 4))
}

/// Sample lines of an exposition (not comments, not blank).
fn series(body: &[u8]) -> usize {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::series;

    #[test]
    fn series_are_the_sample_lines() {
        let body = b"# HELP a x\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\n\nb 3\n";
        assert_eq!(series(body), 3);
    }
}
