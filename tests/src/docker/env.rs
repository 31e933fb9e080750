//! One Docker test's world: the lock, a hub, an agent on this machine's
//! engine, the fixture image and unique container names.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{docker_lock, fixture_image, require_docker, Container, DockerLock, Names, TEST_LABEL};
use crate::agent::{set_config_key, wait_online, Agent};
use crate::hub::{Hub, HubOpts, CLI_TIMEOUT};
use crate::process::{run_raw, Output, RawOutput, Streamer};
use crate::ws::ws_request;

/// One Docker test's world: the lock, a hub, one agent on this machine's
/// engine, and unique container names. Fields drop agent, hub, lock.
#[derive(Debug)]
pub struct DockerEnv {
    /// Container names for this test.
    pub names: Names,
    /// The fixture image ([`super::fixture_image`]).
    pub image: String,
    /// The agent (`nextdeploy-agent run`), talking to the local engine.
    pub agent: Agent,
    /// The hub.
    pub hub: Hub,
    _lock: DockerLock,
}

impl DockerEnv {
    /// Take the lock, check Docker, build the image, start a hub, enrol an
    /// agent named `dk-<test>` (labels `suite=docker,test=<test>`) with extra
    /// top-level config keys (TOML values), start it and wait until online.
    pub fn start(test: &str, config: &[(&str, &str)]) -> Result<DockerEnv> {
        DockerEnv::start_with(test, HubOpts::default(), config)
    }

    /// [`DockerEnv::start`] with a hub started with `hub_opts`.
    pub fn start_with(test: &str, hub_opts: HubOpts, config: &[(&str, &str)]) -> Result<DockerEnv> {
        let lock = docker_lock()?;
        require_docker()?;
        let image = fixture_image()?;
        let hub = Hub::start(hub_opts)?;
        let name = format!("dk-{test}");
        let jt = hub.join_token(&name, &format!("suite=docker,test={test}"), "1h")?;
        let mut agent = Agent::enroll(&hub, &name, &jt.token)?;
        for (k, v) in config {
            set_config_key(&agent.config, k, v)?;
        }
        agent.start()?;
        wait_online(&hub, &[&name], Duration::from_secs(20)).with_context(|| agent.log_tail())?;
        Ok(DockerEnv {
            names: Names::new(test),
            image,
            agent,
            hub,
            _lock: lock,
        })
    }

    /// The agent's name (the `--server`).
    pub fn server(&self) -> &str {
        &self.agent.name
    }

    /// `docker run -d` a fixture container named for `role`.
    pub fn run(&self, role: &str, opts: &[&str], args: &[&str]) -> Result<Container> {
        Container::run(&self.names, &self.image, role, opts, args)
    }

    /// `docker create` a fixture container named for `role`.
    pub fn create(&self, role: &str, opts: &[&str], args: &[&str]) -> Result<Container> {
        Container::create(&self.names, &self.image, role, opts, args)
    }

    /// `nextdeploy agent <sub> --server S <args>` as admin (lossy output).
    pub fn agent_cli(&self, sub: &str, args: &[&str]) -> Result<Output> {
        let mut a = vec!["agent", sub, "--server", self.server()];
        a.extend(args);
        self.hub.cli(&a)
    }

    /// `nextdeploy agent <sub> --server S <args> --output json` as admin,
    /// parsed; fails on a non-zero exit.
    pub fn agent_json(&self, sub: &str, args: &[&str]) -> Result<Value> {
        let mut a = vec!["agent", sub, "--server", self.server()];
        a.extend(args);
        self.hub.cli_json(&a)
    }

    /// `nextdeploy agent <sub> --server S <args>` as admin, raw bytes.
    pub fn agent_raw(&self, sub: &str, args: &[&str]) -> Result<RawOutput> {
        let mut cmd = self.hub.cli_command(&self.hub.admin_token)?;
        cmd.args(["agent", sub, "--server", self.server()])
            .args(args);
        run_raw(cmd, CLI_TIMEOUT)
    }

    /// Spawn `nextdeploy agent <sub> --server S <args>` as admin, streaming.
    pub fn agent_stream(&self, sub: &str, args: &[&str]) -> Result<Streamer> {
        let mut cmd = self.hub.cli_command(&self.hub.admin_token)?;
        cmd.args(["agent", sub, "--server", self.server()])
            .args(args);
        Streamer::spawn(cmd)
    }

    /// `agent ps --all --filter label=nextdeploy.test=<prefix>`: this test's containers.
    pub fn ps_mine(&self) -> Result<Vec<Value>> {
        let f = format!("label={TEST_LABEL}={}", self.names.prefix);
        let v = self.agent_json("ps", &["--all", "--filter", &f])?;
        match v {
            Value::Array(a) => Ok(a),
            other => bail!("agent ps --output json is not an array: {other}"),
        }
    }

    /// A WebSocket request as admin: the first reply with its id.
    pub fn ws(&self, action: &str, payload: Value) -> Result<Value> {
        ws_request(
            &self.hub,
            &self.hub.admin_token,
            json!({"id": 1, "action": action, "server": self.server(), "payload": payload}),
        )
    }

    /// A WebSocket request that must fail: `(data.code, data.message)`.
    pub fn ws_error(&self, action: &str, payload: Value) -> Result<(String, String)> {
        let r = self.ws(action, payload)?;
        if r["type"] != "error" {
            bail!("{action} was expected to fail, got {r}");
        }
        Ok((
            r["data"]["code"].as_str().unwrap_or_default().to_string(),
            r["data"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ))
    }

    /// Logs of hub and agent, for failure messages.
    pub fn logs(&self) -> String {
        format!("{}\n{}", self.hub.log_tail(), self.agent.log_tail())
    }
}
