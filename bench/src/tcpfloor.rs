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
    let r = tokio::task::spawn_blocking(move || rounds_over(listener, n, rounds)).await;
    let _ = child.kill();
    let _ = child.wait();
    r.context("floor task")?
}

fn rounds_over(
    listener: std::net::TcpListener,
    n: usize,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
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
    // Let the far side's last handshakes and first wake-ups settle.
    std::thread::sleep(Duration::from_secs(1));
    let msg = [b'x'; MSG];
    let mut buf = vec![0u8; 64 * 1024];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        for s in &mut conns {
            // 128 bytes into an empty send buffer: never short.
            let w = s.write(&msg).context("write")?;
            anyhow::ensure!(w == MSG, "short write ({w} of {MSG} bytes)");
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
    while open > 0 && std::os::unix::process::parent_id() == ppid {
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        for ev in events.iter() {
            let Some(s) = conns.get_mut(ev.token().0) else {
                continue;
            };
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
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
mod tests {
    use super::*;

    /// A listener as `measure` makes it, and its address.
    async fn listener() -> (std::net::TcpListener, SocketAddr) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .unwrap();
        let l = sock.listen(1024).unwrap().into_std().unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_round_waits_for_every_echo() {
        let (l, addr) = listener().await;
        let echo = tokio::spawn(run_echo(addr, 50));
        let times = tokio::task::spawn_blocking(move || rounds_over(l, 50, 3))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(times.len(), 3);
        assert!(times.iter().all(|t| *t > 0.0 && *t < LIMIT.as_secs_f64()));
        // The connections closed with the rounds' end: the echo side ends too.
        tokio::time::timeout(Duration::from_secs(10), echo)
            .await
            .expect("the echo side did not end")
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_that_closes_fails_the_round_instead_of_hanging() {
        let (l, addr) = listener().await;
        // Connects, takes the round's message without answering, and closes.
        let closer = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut msg = [0u8; MSG];
            s.read_exact(&mut msg).await.unwrap();
        });
        let r = tokio::task::spawn_blocking(move || rounds_over(l, 1, 1))
            .await
            .unwrap();
        let e = r.expect_err("a closed peer must fail the round");
        assert!(e.to_string().contains("closed mid-round"), "{e:#}");
        closer.await.unwrap();
    }
}
