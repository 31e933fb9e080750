//! Serving one channel the hub opens on a simulated agent: the control
//! channel (hello, heartbeats, health) and the one-shot and streamed requests.

use nextdeploy_agent::channel::write_with_credit;
use nextdeploy_agent::dispatch::stream_diag as agent_stream_diag;
use nextdeploy_agent::limits::HANDLER_QUEUE;
use nextdeploy_shared::protocol::streams::DiagStream;

use super::*;

async fn send(write: &russh::ChannelWriteHalf<Msg>, r: &Reply) -> bool {
    match frame::encode(r) {
        Ok(b) => write.data_bytes(b).await.is_ok(),
        Err(_) => false,
    }
}

/// The fixed answer to a one-shot request.
pub(super) fn answer(id: Option<u64>, act: &str) -> Reply {
    match act.parse::<ActionKind>() {
        Ok(ActionKind::Ping) => Reply::result(
            id,
            json!({"agent_time_ms": nextdeploy_shared::time::now_unix_ms()}),
        ),
        _ => Reply::error(
            id,
            nextdeploy_shared::protocol::ErrorCode::UnknownAction,
            "sim",
        ),
    }
}

/// The control channel: the hello, then heartbeats and (with containers)
/// health snapshots until `cancel` or a failed send.
async fn serve_control(
    write: &russh::ChannelWriteHalf<Msg>,
    id: Option<u64>,
    name: &str,
    cfg: &SimConfig,
    cancel: &CancellationToken,
) {
    let hello = Hello {
        hostname: name.to_string(),
        version: "bench".into(),
        os: "sim".into(),
        docker: DockerStatus {
            available: true,
            ..Default::default()
        },
        features: vec![nextdeploy_shared::protocol::feature::CONTROL_REQUESTS.into()],
        policy: None,
        buffer: None,
    };
    if !send(write, &Reply::new(id, ReplyType::Hello, json!(hello))).await {
        return;
    }
    cfg.stats.hellos.fetch_add(1, Ordering::Relaxed);
    let mut hb = tokio::time::interval(nextdeploy_shared::limits::HEARTBEAT_INTERVAL);
    let mut health = tokio::time::interval(cfg.health_interval);
    let mut seq = 0u64;
    let mut synth = super::synth::Synth::new(name, cfg.containers);
    let interval = cfg.health_interval.as_secs_f64();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = hb.tick() => {
                seq += 1;
                if !send(write, &Reply::new(id, ReplyType::Heartbeat, json!({"seq": seq}))).await { return; }
            }
            _ = health.tick(), if cfg.containers > 0 => {
                let snap = synth.snapshot(now_unix(), interval);
                if !send(write, &Reply::new(id, ReplyType::Health, json!(snap))).await { return; }
                cfg.stats.snapshots.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A `diag_stream` as the real agent serves it: its producer
/// (`nextdeploy_agent::dispatch::diag_stream`) and its credit-paced writer
/// (`nextdeploy_agent::channel::write_with_credit`), so the bench measures
/// the agent's own code, not a copy of it. Ends with the agent's `end` (or
/// `error`) unless the channel went away.
async fn stream_diag(
    read: &mut russh::ChannelReadHalf,
    write: &russh::ChannelWriteHalf<Msg>,
    dec: &mut Decoder,
    id: u64,
    payload: &serde_json::Value,
    cancel: &CancellationToken,
) {
    let p: DiagStream = serde_json::from_value(payload.clone()).unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(HANDLER_QUEUE);
    let producer = tokio::spawn(async move { agent_stream_diag(Some(id), &p, tx).await });
    let ends = nextdeploy_agent::channel::Ends {
        input: None,
        cancel,
    };
    write_with_credit(id, rx, read, dec, write, ends).await;
    producer.abort();
}

pub(super) async fn serve(
    channel: Channel<Msg>,
    name: String,
    cfg: SimConfig,
    cancel: CancellationToken,
    control: Arc<AtomicU32>,
) {
    let chan_id = channel.id();
    let (mut read, write) = channel.split();
    let mut dec = Decoder::new();
    let first = loop {
        match dec.next_message::<Downstream>() {
            Ok(Some((d, _))) => break d,
            Ok(None) => {}
            Err(_) => return,
        }
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => dec.feed(&data),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    let Downstream::Request {
        id,
        action: act,
        payload,
    } = first
    else {
        return;
    };
    let wire_id = id;
    let id = Some(id);
    let kind = act.parse::<ActionKind>().ok();
    match (act.as_str(), kind) {
        (channel_kind::CONTROL, _) => {
            // The handler reads this channel from here on (before the hello:
            // the hub sends nothing more until it has it).
            control.store(chan_id.number() + 1, Ordering::Release);
            drop(read);
            serve_control(&write, id, &name, &cfg, &cancel).await;
            return;
        }
        (_, Some(ActionKind::Ping)) => {
            let _ = send(&write, &answer(id, &act)).await;
            let _ = send(&write, &Reply::end(id)).await;
        }
        (_, Some(ActionKind::Deploy)) => {
            for r in deploy_replies(id, &payload) {
                if !send(&write, &r).await {
                    break;
                }
            }
        }
        (_, Some(ActionKind::DiagStream)) => {
            stream_diag(&mut read, &write, &mut dec, wire_id, &payload, &cancel).await;
        }
        _ => {
            let _ = send(
                &write,
                &Reply::error(
                    id,
                    nextdeploy_shared::protocol::ErrorCode::UnknownAction,
                    "sim",
                ),
            )
            .await;
        }
    }
    let _ = write.close().await;
}

/// A deploy as an agent with one container of the image's repository
/// answers it when everything goes well, at once: the swap and health steps,
/// the outcome, the end (the store's part of a deploy is the hub's; the
/// Docker Engine's is not what `stores` compares).
fn deploy_replies(id: Option<u64>, payload: &serde_json::Value) -> Vec<Reply> {
    use nextdeploy_shared::protocol::deploy::{
        ContainerOutcome, DeployKind, DeployOutcome, DeployProgress, DeployRequest, Outcome,
    };
    let Ok(req) = serde_json::from_value::<DeployRequest>(payload.clone()) else {
        let code = nextdeploy_shared::protocol::ErrorCode::BadRequest;
        return vec![Reply::error(id, code, "sim: bad deploy request")];
    };
    let deploy_id = req.deploy_id.unwrap_or_default();
    let at_ms = nextdeploy_shared::time::now_unix_ms();
    let step = |step: &str| DeployProgress {
        deploy_id: deploy_id.clone(),
        container: "app".into(),
        step: step.into(),
        status: "done".into(),
        at_ms,
        ..Default::default()
    };
    let steps = vec![step("swap"), step("health")];
    let outcome = DeployOutcome {
        deploy_id: deploy_id.clone(),
        kind: Some(DeployKind::Deploy),
        image: Some(req.image.clone()),
        outcome: Outcome::Succeeded,
        containers: vec![ContainerOutcome {
            container: "app".into(),
            from_image: "sim:old".into(),
            to_image: req.image,
            outcome: Outcome::Succeeded,
            ..Default::default()
        }],
        started_ms: Some(at_ms),
        finished_ms: Some(at_ms),
        steps: steps.clone(),
        ..Default::default()
    };
    let mut out: Vec<Reply> = steps
        .iter()
        .map(|s| Reply::new(id, ReplyType::Progress, json!(s)))
        .collect();
    out.push(Reply::result(id, json!(outcome)));
    out.push(Reply::end(id));
    out
}
