//! The agent's configuration file (TOML), written by `enroll`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nextdeploy_shared::labels::{validate_name, Labels, Selector};
use nextdeploy_shared::protocol::AgentPolicy;
use serde::{Deserialize, Serialize};

use crate::limits::DEFAULT_HEALTH_INTERVAL_S;

/// Default location of the configuration.
pub const DEFAULT_CONFIG: &str = "/etc/nextdeploy/agent/agent.toml";

/// What the agent needs to reach its hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The hub's SSH address, `host:port`; the hubs of a cluster as
    /// `host:port,host:port` (see [`hub_addresses`]).
    pub hub: String,
    /// The hub host key fingerprint pinned at enrolment, `SHA256:...`.
    pub hub_fingerprint: String,
    /// The name the hub gave this agent (information; identity is the key).
    pub name: String,
    /// Labels the hub holds for this agent (information). Written as
    /// `"k=v,k2=v2"` so the file stays flat and keys can be appended to it; a
    /// `[labels]` table is read too.
    #[serde(default, with = "labels_text")]
    pub labels: Labels,
    /// Private key file (OpenSSH format, 0600).
    pub key_path: PathBuf,
    /// Seconds between application heartbeats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval_s: u64,
    /// Seconds between health snapshots pushed to the hub.
    #[serde(default = "default_health")]
    pub health_interval_s: u64,
    /// Only containers matching this label selector (e.g.
    /// `nextdeploy.managed=true`) exist for the hub; others are invisible to
    /// every action and stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_label: Option<String>,
    /// Bound of the buffer that keeps snapshots and events while the hub is
    /// out of reach, bytes (default 16 MiB; `run --buffer-max-bytes` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_max_bytes: Option<u64>,
    /// The buffer's directory (default: `buffer/` beside this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_dir: Option<PathBuf>,
    /// `[policy]`: what this agent refuses whatever the hub asks (see
    /// [`AgentPolicy`]); written only when it differs from the default, and
    /// last, since a TOML table ends the top-level keys.
    #[serde(default, skip_serializing_if = "is_default_policy")]
    pub policy: AgentPolicy,
}

fn is_default_policy(p: &AgentPolicy) -> bool {
    *p == AgentPolicy::default()
}

fn default_health() -> u64 {
    DEFAULT_HEALTH_INTERVAL_S
}

mod labels_text {
    use nextdeploy_shared::labels::{format_labels, parse_labels, Labels};
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Table(Labels),
    }

    pub fn serialize<S: Serializer>(l: &Labels, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_labels(l))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        match Either::deserialize(d)? {
            Either::Text(t) => parse_labels(&t).map_err(serde::de::Error::custom),
            Either::Table(l) => Ok(l),
        }
    }
}

fn default_heartbeat() -> u64 {
    nextdeploy_shared::limits::HEARTBEAT_INTERVAL.as_secs()
}

/// The addresses in a `hub` value: `host:port`, or several separated by
/// commas (the hubs of a cluster, tried in turn). A name with several DNS
/// records is one address whose records are tried in turn when dialled.
pub fn hub_addresses(hub: &str) -> Vec<String> {
    hub.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl AgentConfig {
    /// The hub addresses ([`hub_addresses`] of `hub`).
    pub fn hubs(&self) -> Vec<String> {
        hub_addresses(&self.hub)
    }

    /// Read and validate.
    pub fn load(path: &Path) -> anyhow::Result<AgentConfig> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read {} (enrol first: nextdeploy-agent enroll --hub HOST:PORT --token TOKEN)", path.display())
        })?;
        let cfg: AgentConfig = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid agent config", path.display()))?;
        cfg.validate()
            .with_context(|| format!("{}", path.display()))?;
        Ok(cfg)
    }

    /// Check the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.hub_fingerprint.starts_with("SHA256:") || self.hub_fingerprint.len() != 50 {
            bail!("hub_fingerprint must be SHA256:<43 base64 characters>");
        }
        let hubs = hub_addresses(&self.hub);
        if hubs.is_empty() || hubs.iter().any(|h| !h.contains(':')) {
            bail!("hub must be host:port, or several separated by commas");
        }
        validate_name(&self.name).map_err(anyhow::Error::msg)?;
        if !(1..=3600).contains(&self.health_interval_s) {
            bail!("health_interval_s must be between 1 and 3600");
        }
        if let Some(scope) = &self.scope_label {
            Selector::parse(scope).map_err(|e| anyhow::anyhow!("scope_label: {e}"))?;
        }
        if !(2..=300).contains(&self.heartbeat_interval_s) {
            bail!("heartbeat_interval_s must be between 2 and 300");
        }
        if let Some(n) = self.buffer_max_bytes {
            check_buffer_max_bytes(n)?;
        }
        self.policy.validate()?;
        Ok(())
    }

    /// The buffer's bound: `flag`, else the config's, else the default.
    pub fn buffer_max_bytes(&self, flag: Option<u64>) -> anyhow::Result<u64> {
        let n = flag
            .or(self.buffer_max_bytes)
            .unwrap_or(crate::limits::DEFAULT_BUFFER_MAX_BYTES);
        check_buffer_max_bytes(n)?;
        Ok(n)
    }

    /// The buffer's directory: the config's, else `buffer/` beside `config`.
    pub fn buffer_dir(&self, config: &Path) -> PathBuf {
        self.buffer_dir.clone().unwrap_or_else(|| {
            config
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("buffer")
        })
    }

    /// Write with mode 0600.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(self)?;
        nextdeploy_shared::keys::write_private_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// A buffer bound must hold a few of the largest records and fit the
/// in-memory index.
fn check_buffer_max_bytes(n: u64) -> anyhow::Result<()> {
    use crate::limits::{MAX_BUFFER_MAX_BYTES, MIN_BUFFER_MAX_BYTES};
    if !(MIN_BUFFER_MAX_BYTES..=MAX_BUFFER_MAX_BYTES).contains(&n) {
        bail!(
            "buffer_max_bytes must be between {MIN_BUFFER_MAX_BYTES} (4 MiB) and {MAX_BUFFER_MAX_BYTES} (4 GiB), not {n}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_validation() {
        let cfg = AgentConfig {
            hub: "bastion:2222".into(),
            hub_fingerprint: format!("SHA256:{}", "a".repeat(43)),
            name: "prod-1".into(),
            labels: nextdeploy_shared::labels::parse_labels("env=prod").unwrap(),
            key_path: "/etc/nextdeploy/agent/agent_ed25519".into(),
            heartbeat_interval_s: 10,
            health_interval_s: 5,
            scope_label: Some("nextdeploy.managed=true".into()),
            buffer_max_bytes: None,
            buffer_dir: None,
            policy: AgentPolicy::default(),
        };
        let text = toml::to_string_pretty(&cfg).unwrap();
        let back: AgentConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        assert!(toml::from_str::<AgentConfig>(&format!("{text}\nbogus = 1\n")).is_err());
        // The file is flat: a key appended at the end is a top-level key.
        let mut plain = cfg.clone();
        plain.scope_label = None;
        let plain_text = toml::to_string_pretty(&plain).unwrap();
        let appended: AgentConfig =
            toml::from_str(&format!("{plain_text}scope_label = \"a=b\"\n")).unwrap();
        assert_eq!(appended.scope_label.as_deref(), Some("a=b"));
        assert_eq!(appended.labels, cfg.labels);
        // The older table form still reads.
        let table = text.replace("labels = \"env=prod\"", "") + "\n[labels]\nenv = \"prod\"\n";
        assert_eq!(
            toml::from_str::<AgentConfig>(&table).unwrap().labels,
            cfg.labels
        );
        let mut bad = cfg.clone();
        bad.hub_fingerprint = "MD5:xx".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn policy_is_a_table_written_only_when_set() {
        let mut cfg = AgentConfig {
            hub: "bastion:2222".into(),
            hub_fingerprint: format!("SHA256:{}", "a".repeat(43)),
            name: "prod-1".into(),
            labels: Labels::default(),
            key_path: "/k".into(),
            heartbeat_interval_s: 10,
            health_interval_s: 5,
            scope_label: None,
            buffer_max_bytes: None,
            buffer_dir: None,
            policy: AgentPolicy::default(),
        };
        assert!(!toml::to_string_pretty(&cfg).unwrap().contains("policy"));
        cfg.policy.read_only = true;
        cfg.policy.deploy_images = vec!["registry.example.com/team/*".into()];
        let text = toml::to_string_pretty(&cfg).unwrap();
        assert!(text.contains("[policy]\nread_only = true"), "{text}");
        let back: AgentConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        back.validate().unwrap();
        // Keys left out keep their defaults; unknown ones and bad patterns are refused.
        let partial: AgentConfig = toml::from_str(&format!(
            "{}[policy]\nexec = false\n",
            toml::to_string_pretty(&AgentConfig {
                policy: AgentPolicy::default(),
                ..cfg.clone()
            })
            .unwrap()
        ))
        .unwrap();
        assert!(!partial.policy.exec && partial.policy.lifecycle && !partial.policy.read_only);
        assert!(toml::from_str::<AgentConfig>(&format!("{text}readonly = true\n")).is_err());
        cfg.policy.deploy_images = vec!["a/**b".into()];
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("policy.deploy_images"));
    }
}
