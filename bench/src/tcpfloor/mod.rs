//! The fan-out's floor on this machine: the same round (one small message to
//! each of N loopback TCP connections, one back from each, time until all are
//! back) with no SSH, no JSON and no async runtime: nonblocking sockets and
//! one epoll loop a side (mio), the near side here, the far side in a child
//! process (`tcp-echo`; a process here may hold at most 20,000 open files),
//! from the same 200 source addresses as the simulated agents.
//!
//! What it measures is the kernel's loopback TCP work (two sends, two
//! receives, their wake-ups and ACKs per connection) plus the least user
//! space that can drive it. Run while the hub and the simulated agents are
//! connected and idle, as the fan-out's rounds are.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// Bytes each way per connection and round: about one SSH packet carrying
/// the fan-out's ping request (the answer's packet is a little longer).
pub const MSG: usize = 128;
/// Longest the set-up, or one round, may take before the measurement fails.
const LIMIT: Duration = Duration::from_secs(60);
/// The listener's token; connections are `Token(0..n)`.
const LISTENER: Token = Token(usize::MAX);
/// Events taken per `poll`.
const EVENTS: usize = 1024;

/// Seconds of each of `rounds` rounds over `n` connections.
pub async fn measure(n: usize, rounds: usize) -> anyhow::Result<Vec<f64>> {
    with_echo_child(n, move |l| rounds_over(l, n, rounds)).await
}

/// Run `f` on a listener to which a `tcp-echo` child makes `n` connections.
async fn with_echo_child<T: Send + 'static>(
    n: usize,
    f: impl FnOnce(std::net::TcpListener) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    // tokio's socket, for a backlog that holds a burst of connects (std's is 128).
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let listener = sock.listen(4096)?.into_std()?;
    let addr = listener.local_addr()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["tcp-echo", "--to", &addr.to_string()])
        .args(["--count", &n.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start tcp-echo")?;
    let r = tokio::task::spawn_blocking(move || f(listener)).await;
    let _ = child.kill();
    let _ = child.wait();
    r.context("floor task")?
}

/// Accept `n` connections on `listener`, each registered as `Token(i)`,
/// then let the far side's last handshakes and first wake-ups settle.
fn accept_all(listener: std::net::TcpListener, n: usize) -> anyhow::Result<(Poll, Vec<TcpStream>)> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(EVENTS);
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    let t0 = Instant::now();
    while conns.len() < n {
        let left = LIMIT.checked_sub(t0.elapsed()).unwrap_or_default();
        if left.is_zero() {
            bail!(
                "tcp floor: {} of {n} connections after {LIMIT:?}",
                conns.len()
            );
        }
        poll.poll(&mut events, Some(left))?;
        loop {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nodelay(true)?;
                    poll.registry()
                        .register(&mut s, Token(conns.len()), Interest::READABLE)?;
                    conns.push(s);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("accept"),
            }
        }
    }
    poll.registry().deregister(&mut listener)?;
    std::thread::sleep(Duration::from_secs(1));
    Ok((poll, conns))
}

fn rounds_over(
    listener: std::net::TcpListener,
    n: usize,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let (mut poll, mut conns) = accept_all(listener, n)?;
    let mut events = Events::with_capacity(EVENTS);
    let msg = [b'x'; MSG];
    let mut buf = vec![0u8; 64 * 1024];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        for s in &mut conns {
            send(s, &msg)?;
        }
        let want = n * MSG;
        let mut got = 0usize;
        while got < want {
            let left = LIMIT.checked_sub(t0.elapsed()).unwrap_or_default();
            if left.is_zero() {
                bail!("tcp floor: {got} of {want} bytes back after {LIMIT:?}");
            }
            poll.poll(&mut events, Some(left))?;
            for ev in events.iter() {
                let Some(s) = conns.get_mut(ev.token().0) else {
                    continue;
                };
                got += drain(s, &mut buf)?;
            }
        }
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok(times)
}

/// Write one message: 128 bytes into an empty send buffer are never short.
fn send(s: &mut TcpStream, msg: &[u8]) -> anyhow::Result<()> {
    let w = s.write(msg).context("write")?;
    anyhow::ensure!(w == msg.len(), "short write ({w} of {} bytes)", msg.len());
    Ok(())
}

/// The latency scenario's shapes over plain TCP: request and answer of
/// [`MSG`] bytes each on connections to a `tcp-echo` child, no SSH, no JSON,
/// no WebSocket, no hub hop.
#[derive(Debug)]
pub struct EchoLatency {
    /// Round trip of each sequential message (one in flight), ms.
    pub rtts_ms: Vec<f64>,
    /// Messages answered per second with `concurrency` in flight.
    pub per_s: f64,
    /// Messages answered in the concurrent window.
    pub answered: u64,
    /// Most messages in flight at once in the concurrent window.
    pub max_in_flight: usize,
}

/// The latency scenario's reference: over `n` connections (its agents),
/// one warm-up message on each, then `pings` one at a time round-robin
/// (their round trips), then `concurrency` in flight, each on its own
/// connection, a new one sent as one is answered until `window` has passed.
pub async fn measure_latency(
    n: usize,
    pings: usize,
    concurrency: usize,
    window: Duration,
) -> anyhow::Result<EchoLatency> {
    with_echo_child(n, move |l| latency_over(l, n, pings, concurrency, window)).await
}

fn latency_over(
    listener: std::net::TcpListener,
    n: usize,
    pings: usize,
    concurrency: usize,
    window: Duration,
) -> anyhow::Result<EchoLatency> {
    anyhow::ensure!(
        (1..=n).contains(&concurrency),
        "concurrency {concurrency} needs 1..={n} connections"
    );
    let (poll, conns) = accept_all(listener, n)?;
    let mut e = Echoes::new(poll, conns);
    let mut rtts_ms = Vec::with_capacity(pings);
    // As the scenario: every connection once first, not measured.
    for i in 0..(n + pings) {
        let k = i % n;
        let t0 = Instant::now();
        e.send(k)?;
        while e.answered(t0)?.is_empty() {}
        if i >= n {
            rtts_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let t0 = Instant::now();
    let mut idle: std::collections::VecDeque<usize> = (concurrency..n).collect();
    for k in 0..concurrency {
        e.send(k)?;
    }
    let (mut in_flight, mut max_in_flight, mut answered) = (concurrency, concurrency, 0u64);
    let mut progress = Instant::now();
    while in_flight > 0 {
        let done = e.answered(progress)?;
        if !done.is_empty() {
            progress = Instant::now();
        }
        for k in done {
            answered += 1;
            in_flight -= 1;
            idle.push_back(k);
            if t0.elapsed() < window {
                if let Some(j) = idle.pop_front() {
                    e.send(j)?;
                    in_flight += 1;
                    max_in_flight = max_in_flight.max(in_flight);
                }
            }
        }
    }
    Ok(EchoLatency {
        rtts_ms,
        per_s: answered as f64 / t0.elapsed().as_secs_f64(),
        answered,
        max_in_flight,
    })
}

/// Connections with at most one message in flight each.
struct Echoes {
    poll: Poll,
    events: Events,
    conns: Vec<TcpStream>,
    /// Bytes still owed back per connection.
    owed: Vec<usize>,
    msg: [u8; MSG],
    buf: Vec<u8>,
}

impl Echoes {
    fn new(poll: Poll, conns: Vec<TcpStream>) -> Self {
        let owed = vec![0; conns.len()];
        Echoes {
            poll,
            events: Events::with_capacity(EVENTS),
            conns,
            owed,
            msg: [b'x'; MSG],
            buf: vec![0u8; 64 * 1024],
        }
    }

    fn send(&mut self, k: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.owed[k] == 0,
            "connection {k} already has a message in flight"
        );
        send(&mut self.conns[k], &self.msg)?;
        self.owed[k] = MSG;
        Ok(())
    }

    /// Wait once for readiness; the connections whose message is now back
    /// whole. Fails when nothing came back within [`LIMIT`] of `since`.
    fn answered(&mut self, since: Instant) -> anyhow::Result<Vec<usize>> {
        let left = LIMIT.checked_sub(since.elapsed()).unwrap_or_default();
        if left.is_zero() {
            let owed = self.owed.iter().filter(|o| **o > 0).count();
            bail!("tcp echo: {owed} messages not back after {LIMIT:?}");
        }
        self.poll.poll(&mut self.events, Some(left))?;
        let mut done = Vec::new();
        for ev in self.events.iter() {
            let k = ev.token().0;
            let Some(s) = self.conns.get_mut(k) else {
                continue;
            };
            let got = drain(s, &mut self.buf)?;
            if got > self.owed[k] {
                bail!(
                    "tcp echo: {got} bytes back on a connection owed {}",
                    self.owed[k]
                );
            }
            self.owed[k] -= got;
            if got > 0 && self.owed[k] == 0 {
                done.push(k);
            }
        }
        Ok(done)
    }
}

/// Read what `s` holds; the bytes read.
fn drain(s: &mut TcpStream, buf: &mut [u8]) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        match s.read(buf) {
            Ok(0) => bail!("tcp floor: a connection closed mid-round"),
            Ok(k) => total += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(total),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("read"),
        }
    }
}

/// The hidden `tcp-echo` subcommand: `count` connections to `to`, each
/// writing back what it reads, until the parent closes them or goes away.
pub async fn run_echo(to: SocketAddr, count: usize) -> anyhow::Result<()> {
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let sock = tokio::net::TcpSocket::new_v4()?;
        // As the simulated agents spread theirs (`sim::run_agent`).
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 200) as u8));
        sock.bind(SocketAddr::new(src, 0))?;
        let s = tokio::time::timeout(LIMIT, sock.connect(to))
            .await
            .context("connect timeout")?
            .context("connect")?;
        s.set_nodelay(true)?;
        conns.push(TcpStream::from_std(s.into_std()?));
    }
    tokio::task::spawn_blocking(move || echo(conns))
        .await
        .context("echo task")?
}

fn echo(mut conns: Vec<TcpStream>) -> anyhow::Result<()> {
    let mut poll = Poll::new()?;
    for (i, s) in conns.iter_mut().enumerate() {
        poll.registry().register(s, Token(i), Interest::READABLE)?;
    }
    let ppid = std::os::unix::process::parent_id();
    let mut events = Events::with_capacity(EVENTS);
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = conns.len();
    // A closed connection can be reported again (a later hang-up event):
    // each is counted once, and taken out of the poll.
    let mut closed = vec![false; conns.len()];
    while open > 0 && std::os::unix::process::parent_id() == ppid {
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(s) = conns.get_mut(i) else {
                continue;
            };
            if closed[i] {
                continue;
            }
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        closed[i] = true;
                        let _ = poll.registry().deregister(s);
                        open -= 1;
                        break;
                    }
                    Ok(k) => {
                        // A few hundred bytes into an empty send buffer.
                        let w = s.write(&buf[..k]).context("write")?;
                        anyhow::ensure!(w == k, "short write ({w} of {k} bytes)");
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // The parent's connections reset as it goes: done.
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                        closed[i] = true;
                        let _ = poll.registry().deregister(s);
                        open -= 1;
                        break;
                    }
                    Err(e) => return Err(e).context("read"),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
