//! The memory an agent's SSH session holds on the hub, held to what the
//! vendored russh patches bring it to (vendor/README.md).
//!
//! Each connection is one task that russh spawns in `run_stream`: the future
//! of `Session::run` for the hub's [`SshHandler`], wrapped by russh-util's
//! `spawn`. Three of the patches box parts of it: russh-util's `spawn` boxes
//! the future before wrapping it (the wrapping async block held it twice),
//! `Session::run` takes the session boxed (an async fn keeps its argument and
//! the local it moves into), and `Session::run` boxes the `reply` future per
//! packet instead of carrying it in every idle session. That task is crate
//! private to russh, so its size cannot be read with `size_of_val` from
//! here; it is measured instead as the heap the spawn leaves behind: the
//! bytes allocated on this thread by `run_stream` and still held when it
//! returns (the session task's allocation, the boxed session, its buffers
//! and queues), before the task first runs.
//!
//! The bound sits above today's figure by less than the smallest of the
//! three steps (measured below), so undoing any of them fails this test.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::deadline::DeadlineStream;
use super::handler::SshHandler;
use super::sources::Sources;
use super::{server_config, source_limits, PreAuthSlot};
use crate::store::sqlite::SqliteStore;
use crate::{HubConfig, Services};

/// Heap bytes one new session holds once `run_stream` has spawned it, in the
/// test profile (a debug build: sizes differ under optimisation), measured
/// with every patch in place when this test was written: 15,166 bytes in 15
/// allocations. Undoing one patch at a time gave: russh-util's `spawn`
/// without `Box::pin` 17,390 (+2,224: the session future held twice), the
/// `reply` future inline 20,270 (+5,104), `Session::run` taking the session
/// by value 17,710 (+2,544, one allocation fewer).
const SESSION_HEAP_TODAY: i64 = 15_166;
/// Today's figure plus less than the smallest of those steps, leaving room
/// for small changes elsewhere (a dependency's buffer sizes): a failure just
/// over the bound after such a change means re-measuring, not a lost patch.
const SESSION_HEAP_BOUND: i64 = SESSION_HEAP_TODAY + 1_024;

/// The hub's per-connection task (in `serve`) awaits `run_stream`'s future
/// inline, so its size is in every connection's task for the whole
/// connection: 1,376 bytes when measured. It does not contain the session's
/// own future (spawned, not awaited), so the patches do not change it.
const RUN_STREAM_FUTURE_BOUND: usize = 2_048;

fn services() -> Arc<Services> {
    let store = SqliteStore::in_memory().expect("in-memory store");
    Arc::new(Services {
        config: HubConfig::default(),
        store: Arc::new(store),
        registry: Default::default(),
        host_fingerprint: String::new(),
        ssh_port: 0,
        cancel: CancellationToken::new(),
        tracker: TaskTracker::new(),
        started: Instant::now(),
        telemetry: Default::default(),
        metrics: Default::default(),
        live_deploys: Default::default(),
        recent: Default::default(),
        ws_connections: crate::http::conns::PerToken::new(1),
        sessions: Default::default(),
        alerts: Default::default(),
    })
}

fn handler(svc: Arc<Services>, peer: SocketAddr, authenticated: Arc<AtomicBool>) -> SshHandler {
    let permit = Arc::new(Semaphore::new(1))
        .try_acquire_owned()
        .expect("a free slot");
    let table = Sources::new(source_limits(&HubConfig::default()));
    let slot = PreAuthSlot {
        _permit: permit,
        source: table.admit(peer.ip(), Instant::now()).expect("admitted"),
        failed: Default::default(),
    };
    SshHandler::new(svc, peer, slot, authenticated)
}

#[test]
fn an_agent_session_on_the_hub_stays_small() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A real connection, as `serve` gets it; the peer has sent its SSH id.
    let (socket, peer, _client) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        client
            .write_all(b"SSH-2.0-future-size-test\r\n")
            .await
            .expect("write id");
        let (socket, peer) = listener.accept().await.expect("accept");
        (socket, peer, client)
    });
    let _guard = rt.enter();
    let authenticated = Arc::new(AtomicBool::new(false));
    let stream = DeadlineStream::new(socket, Duration::from_secs(15), authenticated.clone());
    let handler = handler(services(), peer, authenticated);
    let key = nextdeploy_shared::keys::generate("future-size-test").expect("host key");
    let config = Arc::new(server_config(key));

    let fut = russh::server::run_stream(config, stream, handler);
    let run_stream_future = std::mem::size_of_val(&fut);

    let mut running = None;
    let heap = allocation_counter::measure(|| {
        // Returns right after spawning the session's task, which has not
        // run yet (a current-thread runtime runs it only when this waits).
        running = Some(rt.block_on(fut));
    });
    let running = running.expect("ran").expect("run_stream");
    eprintln!(
        "run_stream future: {run_stream_future} bytes; heap held by a new session: \
         {} bytes in {} allocations ({} allocated in all)",
        heap.bytes_current, heap.count_current, heap.bytes_total
    );

    assert!(
        heap.count_total > 0 && heap.bytes_current > 4_096,
        "the allocation counter saw nothing: is it the global allocator?"
    );
    if !cfg!(debug_assertions) {
        eprintln!("the bound is for the debug test profile: not checked");
        return;
    }
    assert!(
        heap.bytes_current <= SESSION_HEAP_BOUND,
        "a new SSH session holds {} bytes of heap (bound {SESSION_HEAP_BOUND}, {SESSION_HEAP_TODAY} \
         when measured): was a Box::pin of the vendored russh/russh-util patches undone? \
         (vendor/README.md)",
        heap.bytes_current
    );
    assert!(
        run_stream_future <= RUN_STREAM_FUTURE_BOUND,
        "run_stream's future is {run_stream_future} bytes (bound {RUN_STREAM_FUTURE_BOUND}); \
         the hub's per-connection task holds it inline"
    );
    drop(running);
}
