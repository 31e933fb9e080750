#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Deploy outcomes an agent pushes on its control channel (as it does for a
//! deploy that finished while the hub was away) only update that agent's
//! unfinished deploys: two simulated agents (russh clients with enrolled
//! keys, speaking the agent protocol) push an outcome for the other's
//! deploy and for a deploy already finished; both records stay as they were,
//! and the hub still acknowledges them so the agent stops re-sending. The
//! owner's own push, last, does land (the test can see a change).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nextdeploy_shared::frame::{self, Decoder};
use nextdeploy_shared::protocol::deploy::{DeployOutcome, Outcome};
use nextdeploy_shared::protocol::{
    channel_kind, feature, Downstream, ErrorCode, PushedOutcome, Reply, ReplyType, AGENT_USER,
};
use nextdeploy_tests::flood_agent::sim_hello;
use nextdeploy_tests::*;
use russh::client::{self, Msg, Session};
use russh::keys::PublicKeyOrCertificate;
use russh::{Channel, ChannelMsg};
use serde_json::json;
use tokio::sync::mpsc;

/// Any one step of the exchange (connect, a deploy reaching an agent, an ack).
const STEP: Duration = Duration::from_secs(20);

/// What a simulated agent tells the test.
#[derive(Debug)]
enum Seen {
    /// The hub asked for deploy `0`.
    Deploy(String),
    /// The hub acknowledged deploy `0`.
    Ack(String),
}

struct Sim {
    pin: String,
    /// Refuse deploys at once (else hold them, never answering).
    refuse: bool,
    seen: mpsc::UnboundedSender<Seen>,
    /// Frames the test pushes on the control channel, taken by it.
    push: Arc<Mutex<Option<mpsc::UnboundedReceiver<Reply>>>>,
}

impl client::Handler for Sim {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(matches!(key, PublicKeyOrCertificate::PublicKey { key, .. }
            if nextdeploy_shared::keys::fingerprint(key) == self.pin))
    }

    async fn server_channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        let (seen, refuse, push) = (self.seen.clone(), self.refuse, self.push.clone());
        tokio::spawn(serve(channel, seen, refuse, push));
        Ok(())
    }
}

async fn send(w: &russh::ChannelWriteHalf<Msg>, r: &Reply) {
    let _ = w.data_bytes(frame::encode(r).unwrap()).await;
}

/// One channel the hub opened: the control channel (hello, then the test's
/// pushes out and the hub's acks in) or a deploy.
async fn serve(
    channel: Channel<Msg>,
    seen: mpsc::UnboundedSender<Seen>,
    refuse: bool,
    push: Arc<Mutex<Option<mpsc::UnboundedReceiver<Reply>>>>,
) {
    let (mut read, write) = channel.split();
    let mut dec = Decoder::new();
    let mut pushes = None;
    loop {
        while let Ok(Some((d, _))) = dec.next_message::<Downstream>() {
            match d {
                Downstream::Request {
                    id,
                    action,
                    payload,
                } if action == channel_kind::CONTROL => {
                    let hello = sim_hello("sim", vec![feature::CONTROL_REQUESTS.into()]);
                    let _ = payload;
                    send(
                        &write,
                        &Reply::new(Some(id), ReplyType::Hello, json!(hello)),
                    )
                    .await;
                    pushes = push.lock().unwrap().take();
                }
                Downstream::Request { id, payload, .. } => {
                    let deploy = payload["deploy_id"].as_str().unwrap_or_default();
                    let _ = seen.send(Seen::Deploy(deploy.to_string()));
                    if refuse {
                        send(
                            &write,
                            &Reply::error(Some(id), ErrorCode::BadRequest, "sim refuses"),
                        )
                        .await;
                        send(&write, &Reply::end(Some(id))).await;
                    }
                }
                Downstream::Ack { deploy_id } => {
                    let _ = seen.send(Seen::Ack(deploy_id));
                }
                _ => {}
            }
        }
        tokio::select! {
            m = read.wait() => match m {
                Some(ChannelMsg::Data { data }) => dec.feed(&data),
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
                Some(_) => {}
            },
            Some(r) = async { match pushes.as_mut() { Some(p) => p.recv().await, None => std::future::pending().await } } => {
                send(&write, &r).await;
            }
        }
    }
}

/// A CLI deploy in the background, stopped (and reaped) on drop.
struct Cli(std::process::Child);

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A connected simulated agent: its pushes and what it saw.
struct Connected {
    _handle: client::Handle<Sim>,
    push: mpsc::UnboundedSender<Reply>,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Connected {
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(STEP, self.seen.recv())
            .await
            .expect("sim: nothing within the step")
            .unwrap()
    }

    /// Push `deploy_id` as `outcome`; wait for the hub's ack.
    async fn push_outcome(&mut self, deploy_id: &str, outcome: Outcome) {
        let doc = PushedOutcome {
            deploy_outcome: DeployOutcome {
                deploy_id: deploy_id.into(),
                outcome,
                ..DeployOutcome::default()
            },
        };
        self.push
            .send(Reply::new(Some(0), ReplyType::Result, json!(doc)))
            .unwrap();
        match self.next().await {
            Seen::Ack(id) => assert_eq!(id, deploy_id),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
}

async fn connect(hub: &Hub, agent: &Agent, refuse: bool) -> Connected {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let (push, push_rx) = mpsc::unbounded_channel();
    let sim = Sim {
        pin: hub.fingerprint.clone(),
        refuse,
        seen: seen_tx,
        push: Arc::new(Mutex::new(Some(push_rx))),
    };
    let addr = format!("127.0.0.1:{}", hub.ssh_port);
    let (handle, ok) = nextdeploy_tests::ssh::key_login(&addr, &agent.key, AGENT_USER, sim)
        .await
        .unwrap();
    assert!(ok);
    Connected {
        _handle: handle,
        push,
        seen,
    }
}

fn deploy_record(hub: &Hub, id: &str) -> serde_json::Value {
    let mut v = hub.cli_json(&["deploys", "show", id]).unwrap();
    v.as_object_mut().unwrap().remove("progress");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_outcomes_only_land_on_the_agents_unfinished_deploys() {
    let hub = start_hub().unwrap();
    let t1 = hub.join_token("sim1", "", "1h").unwrap();
    let t2 = hub.join_token("sim2", "", "1h").unwrap();
    let a1 = Agent::enroll(&hub, "sim1", &t1.token).unwrap();
    let a2 = Agent::enroll(&hub, "sim2", &t2.token).unwrap();
    let mut sim1 = connect(&hub, &a1, true).await;
    let mut sim2 = connect(&hub, &a2, false).await;
    wait_online(&hub, &["sim1", "sim2"], STEP).unwrap();

    // sim1 refuses its deploy: the hub records it as failed (final).
    let deploy = |server: &str| {
        let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
        cmd.args([
            "agent",
            "deploy",
            "--server",
            server,
            "--container",
            "web",
            "--image",
            "app:2",
        ]);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Cli(cmd.spawn().unwrap())
    };
    let c1 = deploy("sim1");
    let Seen::Deploy(d1) = sim1.next().await else {
        panic!("no deploy reached sim1")
    };
    let c2 = deploy("sim2");
    let Seen::Deploy(d2) = sim2.next().await else {
        panic!("no deploy reached sim2")
    };
    let deadline = std::time::Instant::now() + STEP;
    while deploy_record(&hub, &d1)["status"] != "failed" {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            deploy_record(&hub, &d1)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(c1);
    let finished = deploy_record(&hub, &d1);
    let running = deploy_record(&hub, &d2);
    assert_eq!(running["status"], "running", "{running}");

    // A finished deploy, even the pusher's own, and another agent's deploy
    // stay as they are; each is acknowledged.
    sim1.push_outcome(&d1, Outcome::Succeeded).await;
    sim1.push_outcome(&d2, Outcome::Succeeded).await;
    sim2.push_outcome(&d1, Outcome::Succeeded).await;
    assert_eq!(deploy_record(&hub, &d1), finished);
    assert_eq!(deploy_record(&hub, &d2), running);

    // The owner's push of its unfinished deploy lands.
    sim2.push_outcome(&d2, Outcome::Succeeded).await;
    assert_eq!(deploy_record(&hub, &d2)["status"], "succeeded");
    drop(c2);
}
