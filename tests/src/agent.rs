//! The agent fixture: `nextdeploy-agent enroll` into a temp dir, then
//! `nextdeploy-agent run` as a child killed on drop; edits of its
//! `agent.toml`; waits on the hub's view of agents.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::hub::{Hub, CLI_TIMEOUT, LOG_TAIL_LINES};
use crate::paths::{agent_bin, read_lossy, tail, TempDir};
use crate::process::{self, run_bounded, wait_until, Output, Proc};

/// An enrolled agent with its own config dir; `run` is spawned by
/// [`Agent::start`] (or [`enroll_agent`]) and killed on drop.
#[derive(Debug)]
pub struct Agent {
    dir: TempDir,
    /// Agent name (from the join token).
    pub name: String,
    /// `agent.toml`.
    pub config: PathBuf,
    /// The agent's private key (`agent_ed25519` beside the config).
    pub key: PathBuf,
    /// The `run` log.
    pub log: PathBuf,
    /// What `enroll` printed.
    pub enroll_output: Output,
    child: Option<Proc>,
    starts: u32,
}

/// `nextdeploy-agent enroll --hub ADDR --token T --config CONFIG`.
pub fn agent_enroll(hub_ssh_addr: &str, token: &str, config: &Path) -> Result<Output> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.arg("enroll")
        .arg("--hub")
        .arg(hub_ssh_addr)
        .arg("--token")
        .arg(token)
        .arg("--config")
        .arg(config);
    run_bounded(cmd, CLI_TIMEOUT)
}

/// After a successful enrolment: the config exists and the private key
/// beside it is mode 0600.
pub fn check_enrolled_files(config: &Path, key: &Path) -> Result<()> {
    if !config.is_file() {
        bail!("enrol exited 0 but wrote no config at {}", config.display());
    }
    let meta = fs::metadata(key)
        .with_context(|| format!("enrol exited 0 but wrote no key at {}", key.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o600 {
        bail!("agent key {} has mode {mode:o}, want 600", key.display());
    }
    Ok(())
}

/// Set `key = value` (value in TOML syntax, e.g. `"\"a=b\""` or `5`) at the
/// top level of an agent config, keeping the rest of the file (comments
/// included) as it is.
pub fn set_config_key(path: &Path, key: &str, value: &str) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parse {} as TOML", path.display()))?;
    let v: toml_edit::Value = value
        .parse()
        .with_context(|| format!("{value} is not a TOML value"))?;
    doc[key] = toml_edit::value(v);
    fs::write(path, doc.to_string()).with_context(|| format!("write {}", path.display()))
}

impl Agent {
    /// Enrol with an existing join token into a fresh dir (does not start `run`).
    pub fn enroll(hub: &Hub, name: &str, token: &str) -> Result<Agent> {
        Self::enroll_at(hub, &hub.ssh_addr(), name, token)
    }

    /// [`Agent::enroll`] with `--hub addrs` (a list of hubs: `a,b`).
    pub fn enroll_at(hub: &Hub, addrs: &str, name: &str, token: &str) -> Result<Agent> {
        let dir = TempDir::new(&format!("agent-{name}"))?;
        let config = dir.path().join("agent.toml");
        let out = agent_enroll(addrs, token, &config)?;
        let out = out
            .ok()
            .with_context(|| format!("enrol agent {name}\n{}", hub.log_tail()))?;
        let key = dir.path().join("agent_ed25519");
        check_enrolled_files(&config, &key).with_context(|| out.describe())?;
        Ok(Agent {
            name: name.to_string(),
            config,
            key,
            log: dir.path().join("agent.log"),
            enroll_output: out,
            child: None,
            starts: 0,
            dir,
        })
    }

    /// The agent's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Spawn `nextdeploy-agent run --config ...` (kills a running one first).
    pub fn start(&mut self) -> Result<()> {
        self.child = None;
        let mut cmd = Command::new(agent_bin()?);
        cmd.arg("run").arg("--config").arg(&self.config);
        self.starts += 1;
        let header = format!("start #{}", self.starts);
        self.child = Some(Proc::spawn_logged(cmd, &self.log, &header, None)?);
        Ok(())
    }

    /// SIGKILL the `run` process and reap it.
    pub fn kill(&mut self) {
        self.child = None;
    }

    /// Whether `run` is still running (Some(status) once it exited).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(Proc::try_status)
    }

    /// Pid of the running `nextdeploy-agent run` process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Proc::id)
    }

    /// Send a signal (`TERM`, `STOP`, `CONT`, ...) to the `run` process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        self.child
            .as_ref()
            .ok_or_else(|| anyhow!("agent {} is not running", self.name))?
            .signal(sig)
    }

    /// Wait (bounded) for the `run` process to exit and reap it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let what = format!("agent {}", self.name);
        let r = process::child::wait_exit(&mut self.child, &what, timeout);
        r.with_context(|| self.log_tail())
    }

    /// The last lines of the agent's log.
    pub fn log_tail(&self) -> String {
        format!(
            "--- agent {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            tail(&self.log, LOG_TAIL_LINES)
        )
    }

    /// The whole agent log.
    pub fn log_text(&self) -> String {
        read_lossy(&self.log)
    }

    /// A second config dir holding a copy of this agent's identity (config
    /// and key, `key_path` set to the copy): the same agent, as a cloned
    /// server would be. Not started.
    pub fn copy_identity(&self, tag: &str) -> Result<Agent> {
        let dir = TempDir::new(&format!("agent-{}-{tag}", self.name))?;
        let config = dir.path().join("agent.toml");
        let key = dir.path().join("agent_ed25519");
        fs::copy(&self.key, &key).with_context(|| format!("copy {}", self.key.display()))?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
        let pub_src = self.key.with_extension("pub");
        if pub_src.is_file() {
            fs::copy(&pub_src, key.with_extension("pub"))?;
        }
        let text = fs::read_to_string(&self.config)
            .with_context(|| format!("read {}", self.config.display()))?;
        let mut doc: toml_edit::DocumentMut = text
            .parse()
            .with_context(|| format!("parse {}", self.config.display()))?;
        if !doc.contains_key("key_path") {
            bail!("no key_path in {}:\n{text}", self.config.display());
        }
        doc["key_path"] = toml_edit::value(key.to_string_lossy().into_owned());
        fs::write(&config, doc.to_string())?;
        fs::set_permissions(&config, fs::Permissions::from_mode(0o600))?;
        Ok(Agent {
            name: self.name.clone(),
            config,
            key,
            log: dir.path().join("agent.log"),
            enroll_output: self.enroll_output.clone(),
            child: None,
            starts: 0,
            dir,
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Make a join token (`labels` as `k=v,k=v`, may be empty), enrol a fresh
/// agent with it and start `nextdeploy-agent run`.
pub fn enroll_agent(hub: &Hub, name: &str, labels: &str) -> Result<Agent> {
    let jt = hub.join_token(name, labels, "1h")?;
    let mut agent = Agent::enroll(hub, name, &jt.token)?;
    agent.start()?;
    Ok(agent)
}

fn is_online(entry: &Value) -> bool {
    entry["online"].as_bool() == Some(true)
}

/// Poll `agent list` every 100 ms until every named agent is online; returns
/// the final list.
pub fn wait_online(hub: &Hub, names: &[&str], timeout: Duration) -> Result<Vec<Value>> {
    let mut last = Vec::new();
    wait_until(
        &format!("agents {names:?} online"),
        timeout,
        Duration::from_millis(100),
        || {
            let list = hub.agent_list()?;
            let all = names.iter().all(|n| {
                list.iter()
                    .any(|a| a["name"].as_str() == Some(n) && is_online(a))
            });
            last = list.clone();
            Ok(all.then_some(list))
        },
    )
    .with_context(|| {
        format!(
            "last agent list: {}\n{}",
            Value::Array(last.clone()),
            hub.log_tail()
        )
    })
}

/// Poll `agent list` every 100 ms until none of the named agents is online
/// (listed offline, or not listed).
pub fn wait_offline(hub: &Hub, names: &[&str], timeout: Duration) -> Result<Vec<Value>> {
    wait_until(
        &format!("agents {names:?} offline"),
        timeout,
        Duration::from_millis(100),
        || {
            let list = hub.agent_list()?;
            let any = names.iter().any(|n| {
                list.iter()
                    .any(|a| a["name"].as_str() == Some(n) && is_online(a))
            });
            Ok((!any).then_some(list))
        },
    )
    .with_context(|| hub.log_tail())
}
