#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Pre-auth limits: a flood of silent TCP connections to the SSH port does
//! not keep a real agent out, and silent connections are closed at the
//! (absolute) authentication deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nextdeploy_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const FLOOD: usize = 500;

/// Open `n` TCP connections to `port` from 127.0.0.2 and say nothing.
async fn silent_flood(port: u16, n: usize) -> Vec<(TcpStream, Instant)> {
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let from: SocketAddr = ([127, 0, 0, 2], 0).into();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(from).unwrap();
        let s = tokio::time::timeout(Duration::from_secs(5), sock.connect(to))
            .await
            .unwrap_or_else(|_| panic!("connect #{i} timed out"))
            .unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        conns.push((s, Instant::now()));
    }
    conns
}

/// Read (and discard: the hub's banner) until EOF or error; how long after
/// `opened` that happened, or None if still open at `deadline`.
async fn closed_after(
    mut s: TcpStream,
    opened: Instant,
    deadline: tokio::time::Instant,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_flood_does_not_keep_a_real_agent_out() {
    // default authentication deadline (15 s): the flood outlives the test
    let hub = start_hub().unwrap();
    let jt = hub.join_token("flooded", "env=prod", "1h").unwrap();
    let conns = silent_flood(hub.ssh_port, FLOOD).await;
    let start = Instant::now();
    let mut agent = Agent::enroll(&hub, "flooded", &jt.token).unwrap();
    agent.start().unwrap();
    wait_online(&hub, &["flooded"], Duration::from_secs(10)).unwrap();
    let took = start.elapsed();
    eprintln!("agent enrolled and online in {took:?} under a flood of {FLOOD}");
    assert!(took < Duration::from_secs(10));
    hub.cli(&["agent", "ping", "--server=flooded"])
        .unwrap()
        .ok()
        .unwrap();
    drop(conns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_at_the_auth_deadline() {
    let hub = Hub::start(HubOpts::args(["--auth-deadline", "3s"])).unwrap();
    let conns = silent_flood(hub.ssh_port, FLOOD).await;

    // a slow talker from another address: sends its banner and then dribbles
    // a packet one byte at a time; the deadline is absolute, so activity
    // must not extend it
    let mut slow = TcpStream::connect(("127.0.0.1", hub.ssh_port))
        .await
        .unwrap();
    let slow_opened = Instant::now();
    slow.write_all(b"SSH-2.0-slowloris\r\n").await.unwrap();
    let dribble = tokio::spawn(async move {
        // packet_length 4096, then body bytes, one every 200 ms (about 10 s)
        let mut bytes = vec![0u8, 0, 16, 0];
        bytes.extend(std::iter::repeat_n(0u8, 46));
        let mut buf = [0u8; 4096];
        for b in bytes {
            if slow.write_all(&[b]).await.is_err() {
                return Some(slow_opened.elapsed());
            }
            // drain what the hub sends so its writes never block
            if let Ok(Ok(0)) | Ok(Err(_)) =
                tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await
            {
                return Some(slow_opened.elapsed());
            }
        }
        None
    });

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(s, opened)| tokio::spawn(closed_after(s, opened, deadline)))
        .collect();
    let mut open = 0;
    let mut latest = Duration::ZERO;
    for t in tasks {
        match t.await.unwrap() {
            Some(d) => latest = latest.max(d),
            None => open += 1,
        }
    }
    assert_eq!(open, 0, "{open} silent connections still open after 10 s");
    eprintln!("last silent connection closed {latest:?} after it opened");
    assert!(
        latest <= Duration::from_secs(6),
        "silent connections closed late ({latest:?}) for a 3 s deadline"
    );
    let slow_closed = dribble.await.unwrap();
    let slow_closed = slow_closed.expect("slow talker never disconnected");
    assert!(
        slow_closed <= Duration::from_secs(6),
        "slow talker kept its connection {slow_closed:?} past a 3 s absolute deadline"
    );

    // the hub is fine afterwards and a real agent gets in
    let _agent = enroll_agent(&hub, "after", "env=dev").unwrap();
    wait_online(&hub, &["after"], Duration::from_secs(10)).unwrap();
}
