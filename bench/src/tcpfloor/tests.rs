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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_times_every_ping_and_holds_the_concurrency() {
    let (l, addr) = listener().await;
    let echo = tokio::spawn(run_echo(addr, 10));
    let r =
        tokio::task::spawn_blocking(move || latency_over(l, 10, 25, 4, Duration::from_millis(300)))
            .await
            .unwrap()
            .unwrap();
    // The warm-up round (one per connection) is not timed.
    assert_eq!(r.rtts_ms.len(), 25);
    assert!(r
        .rtts_ms
        .iter()
        .all(|t| *t > 0.0 && *t < LIMIT.as_secs_f64() * 1000.0));
    assert_eq!(r.max_in_flight, 4);
    // Every message sent in the window came back and was counted.
    assert!(r.answered >= 4, "{r:?}");
    assert!(r.per_s > 0.0 && r.per_s.is_finite(), "{r:?}");
    tokio::time::timeout(Duration::from_secs(10), echo)
        .await
        .expect("the echo side did not end")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_asks_no_more_concurrency_than_connections() {
    let (l, _) = listener().await;
    let e =
        tokio::task::spawn_blocking(move || latency_over(l, 2, 1, 3, Duration::from_millis(10)))
            .await
            .unwrap()
            .expect_err("3 in flight over 2 connections");
    assert!(e.to_string().contains("concurrency 3"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_fails_on_a_peer_that_closes_instead_of_hanging() {
    let (l, addr) = listener().await;
    // Takes the first (warm-up) message without answering, and closes.
    let closer = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut msg = [0u8; MSG];
        s.read_exact(&mut msg).await.unwrap();
    });
    let r =
        tokio::task::spawn_blocking(move || latency_over(l, 1, 5, 1, Duration::from_millis(10)))
            .await
            .unwrap();
    let e = r.expect_err("a closed peer must fail the measurement");
    assert!(e.to_string().contains("closed mid-round"), "{e:#}");
    closer.await.unwrap();
}

#[test]
fn an_echo_longer_than_the_message_fails() {
    // A peer that answers more than it was sent is no echo.
    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let mut msg = [0u8; MSG];
        s.read_exact(&mut msg).unwrap();
        s.write_all(&[b'y'; 2 * MSG]).unwrap();
        // Hold the connection until the other side is done.
        let _ = s.read(&mut msg);
    });
    std_l.set_nonblocking(true).unwrap();
    let e = latency_over(std_l, 1, 1, 1, Duration::from_millis(10))
        .expect_err("twice the message back must fail");
    assert!(
        e.to_string().contains("bytes back on a connection owed"),
        "{e:#}"
    );
    peer.join().unwrap();
}
