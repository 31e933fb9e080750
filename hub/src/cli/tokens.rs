//! `login`, `whoami`, `join-token ...` and `token ...`.

use clap::Subcommand;
use nextdeploy_shared::labels::{format_labels, parse_labels};
use nextdeploy_shared::protocol::admin::{ById, CreateJoinToken, CreateToken, LabelsArg};
use nextdeploy_shared::protocol::{Action, Empty, Role};
use nextdeploy_shared::secret::Secret;
use nextdeploy_shared::time::{parse_duration, parse_rfc3339};
use serde_json::{json, Value};

use super::client::Client;
use super::login::{self, Login};
use super::output::{self, Output};

/// `nextdeploy join-token ...`
#[derive(Debug, Subcommand)]
pub enum JoinTokenCmd {
    /// Create a one-time join token for a new agent.
    Create {
        /// Name the agent will have.
        #[arg(long)]
        name: String,
        /// Labels, k=v,k2=v2.
        #[arg(long, default_value = "")]
        labels: String,
        /// Lifetime (30m, 1h, 7d).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The hub's SSH address as agents reach it, for the printed command
        /// [default: the hub's --ssh-public-address, else the hub URL's host
        /// with the hub's SSH port].
        #[arg(long)]
        ssh_address: Option<String>,
    },
    /// List join tokens (never their secrets).
    List,
    /// Delete a join token.
    Delete {
        /// Token id.
        id: String,
    },
}

/// `nextdeploy token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token.
    Create {
        /// What the token may do: admin (everything), operator (act on containers, deploy)
        /// or viewer (read only).
        #[arg(long, value_name = "admin|operator|viewer", value_parser = ["admin", "operator", "viewer"])]
        role: String,
        /// A name for people (shown in the audit log).
        #[arg(long, default_value = "unnamed")]
        name: String,
        /// Lifetime (e.g. 12h, 30d), or `never` for a token valid until
        /// revoked [default: 90d].
        #[arg(long)]
        ttl: Option<String>,
        /// The token may not exec into containers (an operator that acts on
        /// containers without a shell in them).
        #[arg(long)]
        no_exec: bool,
    },
    /// List API tokens (never their secrets).
    List,
    /// Revoke an API token.
    Revoke {
        /// Token id.
        id: String,
    },
}

fn ttl_s(text: &str) -> anyhow::Result<u64> {
    parse_duration(text)
        .map(|d| d.as_secs())
        .map_err(anyhow::Error::msg)
}

/// `nextdeploy login`: check the token (and the pin) against the hub, then
/// save both.
pub async fn login(
    hub: &str,
    token: String,
    tls_pin: Option<String>,
    out: Output,
) -> anyhow::Result<()> {
    let secret = Secret::new(token.trim().to_string());
    let tls_pin = match tls_pin {
        Some(p) => Some(nextdeploy_shared::tls::parse_pin(&p).map_err(anyhow::Error::msg)?),
        None => login::tls_pin_for(hub)?,
    };
    let mut c = Client::connect_pinned(hub, &secret, tls_pin.as_deref()).await?;
    let me = c.call(Action::Whoami(Empty {}), None).await?;
    c.close().await;
    let path = login::save(&Login {
        hub: hub.to_string(),
        token: secret.expose().clone(),
        tls_pin,
    })?;
    match out {
        Output::Json => output::json(&json!({ "hub": hub, "saved_to": path, "whoami": me })),
        Output::Table => {
            println!(
                "Logged in to {hub} as {} ({}); saved to {}",
                me["name"].as_str().unwrap_or("?"),
                me["role"].as_str().unwrap_or("?"),
                path.display()
            );
            Ok(())
        }
    }
}

/// `join-token create`: the token, and the command to paste on the server.
async fn create_join_token(
    c: &mut Client,
    hub: &str,
    name: &str,
    labels: &str,
    ttl: &str,
    ssh_address: Option<String>,
    out: Output,
) -> anyhow::Result<()> {
    let labels = parse_labels(labels).map_err(anyhow::Error::msg)?;
    let mut v = c
        .call(
            Action::CreateJoinToken(CreateJoinToken {
                name: name.to_string(),
                labels: Some(LabelsArg::Map(labels)),
                ttl_s: Some(ttl_s(ttl)?),
            }),
            None,
        )
        .await?;
    // The hub's own answer when it knows one (in a cluster, every live
    // hub's address), else what whoami says agents dial.
    let ssh_address = match (ssh_address, v["ssh_address"].as_str()) {
        (Some(a), _) => a,
        (None, Some(a)) if !a.is_empty() => a.to_string(),
        (None, _) => super::install::learn_hub_ssh(c, hub).await?,
    };
    v["ssh_address"] = Value::String(ssh_address.clone());
    let tok = v["token"].as_str().unwrap_or_default().to_string();
    let command = format!("nextdeploy-agent enroll --hub {ssh_address} --token {tok}");
    v["command"] = Value::String(command.clone());
    match out {
        Output::Json => output::json(&v)?,
        Output::Table => {
            println!(
                "Join token for {name} (one use, expires {}):",
                v["expires_at"].as_str().unwrap_or("?")
            );
            println!("  {tok}");
            println!(
                "Hub host key: {}",
                v["hub_fingerprint"].as_str().unwrap_or("?")
            );
            println!("On the server, run:");
            println!("  {command}");
            println!("  nextdeploy-agent run");
        }
    }
    Ok(())
}

/// `nextdeploy whoami`.
pub async fn whoami(hub: &str, token: &Secret<String>, out: Output) -> anyhow::Result<()> {
    let mut c = Client::connect(hub, token).await?;
    let me = c.call(Action::Whoami(Empty {}), None).await?;
    c.close().await;
    match out {
        Output::Json => output::json(&me),
        Output::Table => {
            output::pairs(&[
                ("hub", hub.to_string()),
                ("token", me["name"].as_str().unwrap_or("").to_string()),
                ("id", me["id"].as_str().unwrap_or("").to_string()),
                ("role", me["role"].as_str().unwrap_or("").to_string()),
                (
                    "hub fingerprint",
                    me["hub_fingerprint"].as_str().unwrap_or("").to_string(),
                ),
                (
                    "agents dial",
                    me["ssh_public_address"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("<hub host>:{}", me["ssh_port"])),
                ),
                (
                    "api url",
                    me["api_public_url"].as_str().unwrap_or("-").to_string(),
                ),
            ]);
            Ok(())
        }
    }
}

/// `nextdeploy join-token ...`
pub async fn join_token(
    cmd: JoinTokenCmd,
    hub: &str,
    token: &Secret<String>,
    out: Output,
) -> anyhow::Result<()> {
    let mut c = Client::connect(hub, token).await?;
    match cmd {
        JoinTokenCmd::Create {
            name,
            labels,
            ttl,
            ssh_address,
        } => create_join_token(&mut c, hub, &name, &labels, &ttl, ssh_address, out).await?,
        JoinTokenCmd::List => {
            let v = c.call(Action::ListJoinTokens(Empty {}), None).await?;
            match out {
                Output::Json => output::json(&v)?,
                Output::Table => {
                    let rows: Vec<Vec<String>> = v
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|t| {
                                    let state = if t["used"].as_bool() == Some(true) {
                                        "used"
                                    } else if t["expired"].as_bool() == Some(true) {
                                        "expired"
                                    } else {
                                        "valid"
                                    };
                                    vec![
                                        s(&t["id"]),
                                        s(&t["name"]),
                                        labels_cell(&t["labels"]),
                                        state.into(),
                                        s(&t["expires_at"]),
                                        s(&t["created_by"]),
                                    ]
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    output::table(
                        &["ID", "NAME", "LABELS", "STATE", "EXPIRES", "CREATED BY"],
                        &rows,
                    );
                }
            }
        }
        JoinTokenCmd::Delete { id } => {
            let v = c
                .call(Action::DeleteJoinToken(ById { id: id.clone() }), None)
                .await?;
            match out {
                Output::Json => output::json(&v)?,
                Output::Table => println!("deleted join token {id}"),
            }
        }
    }
    c.close().await;
    Ok(())
}

/// `nextdeploy token ...`
pub async fn token(
    cmd: TokenCmd,
    hub: &str,
    token: &Secret<String>,
    out: Output,
) -> anyhow::Result<()> {
    let mut c = Client::connect(hub, token).await?;
    match cmd {
        TokenCmd::Create {
            role,
            name,
            ttl,
            no_exec,
        } => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role must be admin, operator or viewer"))?;
            let no_expiry = ttl.as_deref() == Some("never");
            let ttl_s = match ttl.as_deref() {
                None | Some("never") => None,
                Some(t) => Some(ttl_s(t)?),
            };
            let create = CreateToken {
                role,
                name: Some(name),
                ttl_s,
                no_expiry,
                no_exec,
            };
            let v = c.call(Action::CreateToken(create), None).await?;
            match out {
                Output::Json => output::json(&v)?,
                Output::Table => {
                    println!(
                        "API token {} ({}, role {}); shown once:",
                        s(&v["id"]),
                        s(&v["name"]),
                        s(&v["role"])
                    );
                    println!("  {}", s(&v["token"]));
                }
            }
        }
        TokenCmd::List => {
            let v = c.call(Action::ListTokens(Empty {}), None).await?;
            match out {
                Output::Json => output::json(&v)?,
                Output::Table => {
                    let now = nextdeploy_shared::time::now_unix();
                    let rows: Vec<Vec<String>> = v
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|t| {
                                    let state = if !t["revoked_at"].is_null() {
                                        "revoked"
                                    } else if t["expires_at"]
                                        .as_str()
                                        .and_then(parse_rfc3339)
                                        .is_some_and(|e| e <= now)
                                    {
                                        "expired"
                                    } else {
                                        "active"
                                    };
                                    vec![
                                        s(&t["id"]),
                                        s(&t["name"]),
                                        s(&t["role"]),
                                        state.into(),
                                        s(&t["created_at"]),
                                        s(&t["expires_at"]),
                                    ]
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    output::table(
                        &["ID", "NAME", "ROLE", "STATE", "CREATED", "EXPIRES"],
                        &rows,
                    );
                }
            }
        }
        TokenCmd::Revoke { id } => {
            let v = c
                .call(Action::RevokeToken(ById { id: id.clone() }), None)
                .await?;
            match out {
                Output::Json => output::json(&v)?,
                Output::Table => println!("revoked API token {id}"),
            }
        }
    }
    c.close().await;
    Ok(())
}

/// A JSON value as a table cell.
pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A labels object as `k=v,...`.
pub fn labels_cell(v: &Value) -> String {
    serde_json::from_value(v.clone())
        .map(|l| format_labels(&l))
        .ok()
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}
