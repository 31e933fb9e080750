//! Scenario 4: bulk data agent -> hub -> WebSocket client (`diag_stream`, the
//! path of `logs --follow`), and agent -> hub alone (the hub drops the
//! stream), beside OpenSSH sshd -> ssh, same cipher, same run, rounds
//! alternating.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::openssh::Sshd;
use super::{median, target, Target};
use crate::fleet::{sim_name, Fleet};
use crate::procfs;
use crate::{hub, wsclient::Ws};

/// The cipher the agents negotiate with the hub on this machine, which
/// OpenSSH is given too.
fn cipher() -> &'static str {
    nextdeploy_shared::cipher::agent_cipher()
}
/// Bytes per `log` reply.
const CHUNK: u64 = 65536;
/// Alternating rounds of each side (medians are reported, and each side's
/// best round beside them: OpenSSH's rounds here fall into a fast and a slow
/// mode, 224-966 MB/s, so a median of few rounds is a coin flip).
const ROUNDS: usize = 5;

/// Stream `bytes` once: through the hub to this client, or with `sink` to
/// the hub alone (it reads and drops the stream, then answers how much
/// arrived). (seconds, CPU seconds of each of `pids`).
async fn round(
    ws: &mut Ws,
    id: u64,
    server: &str,
    bytes: u64,
    pids: &[u32],
    sink: bool,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let c0: Vec<u64> = pids.iter().map(|p| procfs::cpu_ticks(*p)).collect();
    let t0 = Instant::now();
    let mut payload = json!({"bytes": bytes, "chunk": CHUNK});
    if sink {
        payload["sink"] = json!("hub");
    }
    ws.send(&json!({"id": id, "action": "diag_stream", "server": server, "payload": payload}))
        .await?;
    let mut got = 0u64;
    loop {
        let (e, text) = ws.recv_text().await?;
        if e.id != Some(id) {
            continue;
        }
        if sink && e.kind == "result" {
            let v: Value = serde_json::from_str(&text)?;
            got = v["data"]["data_bytes"].as_u64().unwrap_or(0);
            break;
        }
        got += text.len() as u64;
        if e.kind == "end" {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        got >= bytes,
        "only {got} of {bytes} bytes arrived (sink: {sink})"
    );
    let cpu = pids
        .iter()
        .zip(c0)
        .map(|(p, c)| procfs::cpu_ticks(*p).saturating_sub(c) as f64 / procfs::TICK_HZ)
        .collect();
    Ok((secs, cpu))
}

/// Run the throughput scenario with `bytes` per round.
pub async fn run(template: &Path, pin: &str, work: &Path, bytes: u64) -> anyhow::Result<Value> {
    let dir = work.join("throughput");
    crate::fleet::copy_dir(template, &dir)?;
    let hubp = hub::start(&dir, None)?;
    let fleet = Fleet::start(hubp.ssh, pin, 1, 0)?;
    hub::wait_online(hubp.http, 1, Duration::from_secs(60)).await?;
    let token = hubp.admin_token()?;
    let mut ws = Ws::connect(hubp.http, &token).await?;
    let server = sim_name(0);
    let sshd = Sshd::start(work.join("sshd"), cipher())?;
    // Warm-up of both paths.
    // CPU of the hub, the simulated agent and this process (the WebSocket
    // client): the three share the machine's cores.
    let pids = [hubp.pid(), fleet.pids()[0], std::process::id()];
    round(&mut ws, 1, &server, 16 << 20, &pids, false).await?;
    sshd.transfer(16 << 20, cipher())?;
    let (mut hub_s, mut hub_cpu, mut ssh_s, mut ssh_cpu, mut sshd_cpu, mut cli_cpu) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut agent_cpu, mut client_cpu) = (vec![], vec![]);
    let (mut sink_s, mut sink_cpu) = (vec![], vec![]);
    for r in 0..ROUNDS {
        let (s, c) = round(&mut ws, 10 + r as u64, &server, bytes, &pids, false).await?;
        hub_s.push(s);
        hub_cpu.push(c[0]);
        agent_cpu.push(c[1]);
        client_cpu.push(c[2]);
        let (s, c) = round(&mut ws, 20 + r as u64, &server, bytes, &pids, true).await?;
        sink_s.push(s);
        sink_cpu.push(c[0]);
        let (s, srv, cli) = sshd.transfer(bytes, cipher())?;
        ssh_s.push(s);
        ssh_cpu.push(srv + cli);
        sshd_cpu.push(srv);
        cli_cpu.push(cli);
    }
    drop(ws);
    drop(fleet);
    drop(hubp);
    drop(sshd);
    let _ = std::fs::remove_dir_all(&dir);
    let mb = bytes as f64 / 1e6;
    let rates = |secs: &[f64]| secs.iter().map(|s| (mb / s).round()).collect::<Vec<_>>();
    let rounds_mb_s = json!({
        "hub": rates(&hub_s),
        "openssh": rates(&ssh_s),
        "agent_hub": rates(&sink_s),
    });
    eprintln!("throughput rounds, MB/s: {rounds_mb_s}");
    let best = |secs: &[f64]| mb / secs.iter().copied().fold(f64::INFINITY, f64::min);
    let (best_mb_s, best_ossh_mb_s) = (best(&hub_s), best(&ssh_s));
    let mb_s = mb / median(&mut hub_s);
    let ossh_mb_s = mb / median(&mut ssh_s);
    let hub_cpu_mb = median(&mut hub_cpu) / mb;
    let ossh_cpu_mb = median(&mut ssh_cpu) / mb;
    let ratio = mb_s / ossh_mb_s;
    let sink_mb_s = mb / median(&mut sink_s);
    let sink_cpu_mb = median(&mut sink_cpu) / mb;
    let cpu_ratio = hub_cpu_mb / ossh_cpu_mb;
    Ok(json!({
        "scenario": "throughput",
        "path": "agent -> hub -> WebSocket client (diag_stream, 64 KiB log replies)",
        "bytes": bytes,
        "rounds": ROUNDS,
        "mb_s": mb_s,
        "openssh_mb_s": ossh_mb_s,
        "ratio_vs_openssh": ratio,
        "best_mb_s": best_mb_s,
        "openssh_best_mb_s": best_ossh_mb_s,
        "best_ratio_vs_openssh_best": best_mb_s / best_ossh_mb_s,
        "cipher": cipher(),
        "hub_cpu_ms_per_mb": hub_cpu_mb * 1000.0,
        "openssh_cpu_ms_per_mb": ossh_cpu_mb * 1000.0,
        "openssh_sshd_cpu_ms_per_mb": median(&mut sshd_cpu) / mb * 1000.0,
        "openssh_ssh_cpu_ms_per_mb": median(&mut cli_cpu) / mb * 1000.0,
        "agent_cpu_ms_per_mb": median(&mut agent_cpu) / mb * 1000.0,
        "client_cpu_ms_per_mb": median(&mut client_cpu) / mb * 1000.0,
        "cpu_per_mb_vs_openssh": cpu_ratio,
        "rounds_mb_s": rounds_mb_s,
        "agent_hub_mb_s": sink_mb_s,
        "agent_hub_ratio_vs_openssh": sink_mb_s / ossh_mb_s,
        "agent_hub_cpu_ms_per_mb": sink_cpu_mb * 1000.0,
        "agent_hub_note": "the same stream read and dropped by the hub (diag_stream sink: hub): the tunnel alone, beside sshd -> ssh",
        "cpu_note": "hub process (decrypt, frames, WebSocket) vs sshd + its session processes + ssh (encrypt and decrypt)",
        "targets": [
            target("throughput vs OpenSSH (ratio)", ratio, 1.0, Target::AtLeast),
            target("hub CPU per MB vs OpenSSH (ratio)", cpu_ratio, 1.3, Target::AtMost),
        ],
    }))
}
