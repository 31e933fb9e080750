//! `nextdeploy agent install --ssh root@HOST[:PORT]`: the operator's SSH
//! access is used once to put an agent on a server. Steps: connect (checking
//! known_hosts), look for an existing install, upload the binary and the
//! install script, create a join token, run the script (the server makes its
//! own key; only the one-time token travels, on stdin), wait until the hub
//! sees the agent online. Each failure names its step and shows its output.

mod known_hosts;
mod plan;
pub mod remote;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use nextdeploy_shared::protocol::admin::{ById, CreateJoinToken, LabelsArg, WhoAmI};
use nextdeploy_shared::protocol::{Action, AgentPolicy, Empty};
use nextdeploy_shared::secret::Secret;

use std::sync::atomic::{AtomicBool, Ordering};

use super::client::Client;
use super::output::{self, Output};
use plan::{plan, Plan};
use remote::{sh_quote, HostKeyVerdict, Remote};

/// The install script, shipped inside the CLI so nothing else is needed.
const INSTALL_SCRIPT: &str = include_str!("../../../../deploy/install-agent.sh");
/// The agent's unit, uploaded beside the script.
const AGENT_UNIT: &str = include_str!("../../../../deploy/systemd/nextdeploy-agent.service");
/// Join tokens made for a push install live this long (the install takes seconds).
const JOIN_TTL_S: u64 = 600;
/// Quick remote commands (probe, mkdir, cleanup).
const QUICK: Duration = Duration::from_secs(30);
/// Uploading the binary (tens of MB over a slow link).
const UPLOAD: Duration = Duration::from_secs(600);
/// Running the install script (enrolment and start included).
const SCRIPT: Duration = Duration::from_secs(180);
/// How long the agent has to show up online at the hub.
const ONLINE: Duration = Duration::from_secs(60);
/// Pause between online checks: quick to notice, light on the hub.
const ONLINE_POLL: Duration = Duration::from_millis(250);

/// Flags of `agent install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The server: [USER@]HOST[:PORT] (user default root, port 22).
    #[arg(long)]
    pub ssh: String,
    /// Private key to log in with [default: ~/.ssh/id_ed25519].
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Agent name [default: the server's hostname].
    #[arg(long)]
    pub name: Option<String>,
    /// Labels, k=v,...
    #[arg(long, default_value = "")]
    pub labels: String,
    /// Agent binary to upload [default: nextdeploy-agent beside this program].
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Record an unknown host key in known_hosts (a changed key is always refused).
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// Run the agent as a supervised background process instead of a systemd unit.
    #[arg(long)]
    pub no_systemd: bool,
    /// The hub's SSH address as the server reaches it [default: the hub's
    /// --ssh-public-address, else the hub URL's host with the hub's SSH port].
    #[arg(long)]
    pub hub_ssh: Option<String>,
    /// known_hosts file [default: ~/.ssh/known_hosts].
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Enrol with `[policy] read_only = true`: the agent refuses start, stop,
    /// restart, kill, rm, pull, deploy, rollback and exec, whatever the hub asks.
    #[arg(long)]
    pub read_only: bool,
    /// Enrol with `[policy] exec = false`: the agent refuses exec.
    #[arg(long)]
    pub no_exec: bool,
    /// Install under this directory on the server instead of / (tests).
    #[arg(long, hide = true)]
    pub remote_prefix: Option<String>,
}

/// The hub's SSH address for agents, as the hub tells it (`whoami`): its
/// public address, else the hub URL's host with its SSH port.
pub async fn learn_hub_ssh(c: &mut Client, hub: &str) -> anyhow::Result<String> {
    let me = c.call(Action::Whoami(Empty {}), None).await?;
    let me: WhoAmI = serde_json::from_value(me).context("the hub's whoami answer")?;
    Ok(me.agent_ssh_address(hub))
}

/// With `--output json`, progress goes to stderr and stdout holds only the
/// final JSON document.
static PROGRESS_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// One line of progress.
fn say(line: &str) {
    if PROGRESS_ON_STDERR.load(Ordering::Relaxed) {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

fn step(n: u32, text: &str) {
    say(&format!("[{n}/6] {text}"));
}

/// Run `agent install`; with `--output json`, progress on stderr and one
/// document on stdout: `{name, server, hub_ssh, outcome}`, `outcome`
/// `installed`, `reinstalled` (enrolled before, identity kept) or
/// `already_online` (nothing done).
pub async fn run(
    args: InstallArgs,
    hub: &str,
    token: &Secret<String>,
    out: Output,
) -> anyhow::Result<()> {
    PROGRESS_ON_STDERR.store(out == Output::Json, Ordering::Relaxed);
    let mut p = plan(&args)?;
    let mut hub_api = Client::connect(hub, token).await?;
    if p.hub_ssh.is_empty() {
        p.hub_ssh = learn_hub_ssh(&mut hub_api, hub).await?;
    }
    let r = connect_ssh(&p).await?;
    let report = |name: &str, outcome: &str| match out {
        Output::Json => output::json(&serde_json::json!({
            "name": name,
            "server": p.target.host,
            "hub_ssh": p.hub_ssh,
            "outcome": outcome,
        })),
        Output::Table => Ok(()),
    };
    let (existing, name) = match probe(&r, &mut hub_api, &args, &p).await? {
        Ok(found) => found,
        Err(online) => {
            r.close().await;
            return report(&online, "already_online");
        }
    };
    step(
        3,
        &format!("uploading {} and the install script", p.binary.display()),
    );
    let tmp = make_tmp(&r).await?;
    let job = InstallJob {
        r: &r,
        args: &args,
        plan: &p,
        tmp: &tmp,
        existing: &existing,
        name: &name,
    };
    let outcome = install(&job, &mut hub_api).await;
    let _ = r
        .run(&format!("rm -rf {}", sh_quote(&tmp)), None, QUICK)
        .await;
    r.close().await;
    let name = outcome?;
    wait_online(&mut hub_api, &name, &p.prefix).await?;
    report(
        &name,
        if existing.is_empty() {
            "installed"
        } else {
            "reinstalled"
        },
    )
}

/// Step 1: SSH to the server, checking its key against known_hosts.
async fn connect_ssh(p: &Plan) -> anyhow::Result<Remote> {
    let t = &p.target;
    step(
        1,
        &format!("connecting to {}@{}:{}", t.user, t.host, t.port),
    );
    let r = Remote::connect(&t.user, &t.host, t.port, &p.identity, p.check.clone())
        .await
        .context("step 1 (connect over SSH) failed")?;
    let (verdict, fp) = &r.host_key;
    match verdict {
        HostKeyVerdict::Learned => say(&format!("      host key {fp} recorded in known_hosts")),
        _ => say(&format!("      host key {fp} matches known_hosts")),
    }
    Ok(r)
}

/// Step 2: the name the server is already enrolled under ("" if none) and
/// the name to install as; `Err(name)` when it is installed and online already.
async fn probe(
    r: &Remote,
    hub_api: &mut Client,
    args: &InstallArgs,
    p: &Plan,
) -> anyhow::Result<Result<(String, String), String>> {
    step(2, "looking for an existing install");
    let conf = format!("{}/etc/nextdeploy/agent/agent.toml", p.prefix);
    // Before 2026-12 the agent's config sat directly in /etc/nextdeploy.
    let old = format!("{}/etc/nextdeploy/agent.toml", p.prefix);
    let probe = r
        .run(
            &format!(
                "c={c}; [ -f \"$c\" ] || c={o}; if [ -f \"$c\" ]; then sed -n 's/^name = \"\\(.*\\)\"$/\\1/p' \"$c\"; else echo; fi; hostname",
                c = sh_quote(&conf),
                o = sh_quote(&old)
            ),
            None,
            QUICK,
        )
        .await
        .context("step 2 (probe the server) failed")?;
    let mut lines = probe.stdout.lines();
    let existing = lines.next().unwrap_or("").trim().to_string();
    let hostname = lines.next().unwrap_or("").trim().to_string();
    let name = args.name.clone().unwrap_or(hostname);
    if !existing.is_empty() {
        if args.name.as_deref().is_some_and(|n| n != existing) {
            bail!("the server is already enrolled as {existing}, not {name}; revoke {existing} and remove {conf} on the server first");
        }
        if agent_online(hub_api, &existing).await? {
            check_reported_policy(hub_api, &existing, args, &conf).await?;
            say(&format!(
                "{existing} is already installed on {} and online at the hub: nothing to do",
                p.target.host
            ));
            return Ok(Err(existing));
        }
        say(&format!("      already enrolled as {existing} but not online: reinstalling the binary and restarting it (identity kept)"));
    }
    Ok(Ok((existing, name)))
}

/// Step 3 (start): a fresh temporary directory on the server.
async fn make_tmp(r: &Remote) -> anyhow::Result<String> {
    let tmp = r
        .run("mktemp -d /tmp/nextdeploy-install.XXXXXX", None, QUICK)
        .await
        .context("step 3 (upload) failed")?;
    let tmp = tmp.stdout.trim().to_string();
    if !tmp.starts_with("/tmp/nextdeploy-install.") {
        bail!("step 3 (upload) failed: mktemp said {tmp:?}");
    }
    Ok(tmp)
}

/// Step 6: poll the hub until the agent is online, up to [`ONLINE`].
async fn wait_online(hub_api: &mut Client, name: &str, prefix: &str) -> anyhow::Result<()> {
    step(6, &format!("waiting for {name} to come online at the hub"));
    let started = Instant::now();
    while started.elapsed() < ONLINE {
        if agent_online(hub_api, name).await? {
            say(&format!(
                "{name} is online ({:.1}s)",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        tokio::time::sleep(ONLINE_POLL).await;
    }
    bail!("step 6 failed: {name} did not come online within {}s (on the server: journalctl -u nextdeploy-agent, or {prefix}/var/log/nextdeploy/agent.log)", ONLINE.as_secs())
}

/// What steps 3 to 5 work on: the session, the flags, the plan, the
/// server's temporary directory, the existing enrolment ("" if none), the name.
struct InstallJob<'a> {
    r: &'a Remote,
    args: &'a InstallArgs,
    plan: &'a Plan,
    tmp: &'a str,
    existing: &'a str,
    name: &'a str,
}

/// Steps 3 to 5: upload, join token if needed, run the script. Returns the
/// agent's name (the existing one on a reinstall).
async fn install(job: &InstallJob<'_>, hub_api: &mut Client) -> anyhow::Result<String> {
    upload(job.r, &job.plan.binary, job.tmp).await?;
    let mut cmd = script_command(job);
    let (token_id, stdin) = if job.existing.is_empty() {
        let (id, secret) = create_join_token(job, hub_api).await?;
        cmd = format!(
            "NEXTDEPLOY_JOIN_TOKEN=$(cat) {cmd} --hub {} --name {}",
            sh_quote(&job.plan.hub_ssh),
            sh_quote(job.name)
        );
        (id, secret)
    } else {
        step(4, "already enrolled: no join token needed");
        (None, String::new())
    };
    run_script(job.r, hub_api, &cmd, stdin, token_id).await?;
    Ok(if job.existing.is_empty() {
        job.name.to_string()
    } else {
        job.existing.to_string()
    })
}

/// Step 3: the agent binary, the install script and the unit into `tmp`.
async fn upload(r: &Remote, binary: &Path, tmp: &str) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(binary)
        .await
        .with_context(|| format!("cannot read {}", binary.display()))?;
    let up = r
        .run(
            &format!(
                "cat > {q}/nextdeploy-agent && chmod 0755 {q}/nextdeploy-agent",
                q = sh_quote(tmp)
            ),
            Some(Box::new(file)),
            UPLOAD,
        )
        .await
        .context("step 3 (upload the binary) failed")?;
    if up.status != 0 {
        bail!("step 3 (upload the binary) failed: {}", up.output());
    }
    for (path, text) in [
        ("install-agent.sh", INSTALL_SCRIPT),
        ("systemd/nextdeploy-agent.service", AGENT_UNIT),
    ] {
        let q = sh_quote(&format!("{tmp}/{path}"));
        let up = r
            .run(
                &format!("mkdir -p \"$(dirname {q})\" && cat > {q}"),
                Some(Box::new(std::io::Cursor::new(text.as_bytes().to_vec()))),
                QUICK,
            )
            .await
            .context("step 3 (upload the script) failed")?;
        if up.status != 0 {
            bail!("step 3 (upload the script) failed: {}", up.output());
        }
    }
    Ok(())
}

/// The install script's command line, without the join-token part.
fn script_command(job: &InstallJob<'_>) -> String {
    let tmp = job.tmp;
    let mut cmd = format!(
        "sh {}/install-agent.sh --binary {}/nextdeploy-agent",
        sh_quote(tmp),
        sh_quote(tmp)
    );
    if job.args.no_systemd {
        cmd.push_str(" --no-systemd");
    }
    if job.args.read_only {
        cmd.push_str(" --read-only");
    }
    if job.args.no_exec {
        cmd.push_str(" --no-exec");
    }
    if !job.plan.prefix.is_empty() {
        cmd.push_str(&format!(" --prefix {}", sh_quote(&job.plan.prefix)));
    }
    cmd
}

/// Step 4: a short-lived join token for the new agent: (token id, secret).
async fn create_join_token(
    job: &InstallJob<'_>,
    hub_api: &mut Client,
) -> anyhow::Result<(Option<String>, String)> {
    step(4, &format!("creating a join token for {}", job.name));
    let v = hub_api
        .call(
            Action::CreateJoinToken(CreateJoinToken {
                name: job.name.to_string(),
                labels: Some(LabelsArg::Map(job.plan.labels.clone())),
                ttl_s: Some(JOIN_TTL_S),
            }),
            None,
        )
        .await
        .context("step 4 (create the join token) failed")?;
    let secret = v["token"].as_str().unwrap_or_default().to_string();
    Ok((v["id"].as_str().map(str::to_string), secret))
}

/// Step 5: run the script with the token on stdin; on failure delete the token.
async fn run_script(
    r: &Remote,
    hub_api: &mut Client,
    cmd: &str,
    stdin: String,
    token_id: Option<String>,
) -> anyhow::Result<()> {
    step(
        5,
        "running the install script on the server (the server makes its own key)",
    );
    let ran = r
        .run(
            cmd,
            Some(Box::new(std::io::Cursor::new(stdin.into_bytes()))),
            SCRIPT,
        )
        .await;
    let failed = match &ran {
        Ok(out) if out.status == 0 => None,
        Ok(out) => Some(format!("exit {}:\n{}", out.status, out.output())),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failed {
        if let Some(id) = token_id {
            // The token may be unused: do not leave a live credential behind.
            let _ = hub_api
                .call(Action::DeleteJoinToken(ById { id: id.clone() }), None)
                .await;
        }
        bail!("step 5 (install script) failed: {why}");
    }
    if let Ok(out) = ran {
        for line in out.stdout.lines() {
            say(&format!("      {line}"));
        }
    }
    Ok(())
}

async fn agent_online(c: &mut Client, name: &str) -> anyhow::Result<bool> {
    let v = c.call(Action::ListAgents(Empty {}), None).await?;
    Ok(v.as_array().is_some_and(|a| {
        a.iter()
            .any(|e| e["name"].as_str() == Some(name) && e["online"].as_bool() == Some(true))
    }))
}

/// An agent found online is left as it is: refuse when it does not already
/// enforce what `--read-only` / `--no-exec` ask (they are written at
/// enrolment; an existing config is kept).
async fn check_reported_policy(
    c: &mut Client,
    name: &str,
    args: &InstallArgs,
    conf: &str,
) -> anyhow::Result<()> {
    if !args.read_only && !args.no_exec {
        return Ok(());
    }
    let v = c.call(Action::ListAgents(Empty {}), None).await?;
    let entry = v
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"].as_str() == Some(name)));
    let policy: Option<AgentPolicy> = entry
        .and_then(|e| e.get("policy"))
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    let ok = policy.is_some_and(|p| (!args.read_only || p.read_only) && (!args.no_exec || !p.exec));
    if !ok {
        bail!("{name} is already enrolled and online without the policy asked for: --read-only and --no-exec are written at enrolment; set them under [policy] in {conf} on the server (read_only = true, exec = false) and restart the agent");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::plan::parse_target;

    #[test]
    fn targets() {
        let t = parse_target("root@203.0.113.7:2200").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("root", "203.0.113.7", 2200)
        );
        let t = parse_target("example.org").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("root", "example.org", 22)
        );
        assert!(parse_target("@x").is_err());
    }
}
