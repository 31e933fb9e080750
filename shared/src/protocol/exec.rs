//! Exec: a command in a container, through the tunnel, as `docker exec` runs
//! it; its input, resizes and outcome; and the recorded sessions.
//!
//! Output comes as `log` replies (`{"stream":"stdout","chunk":...}`, bytes
//! that are not UTF-8 as `b64`), as a log stream does; then one `result`
//! ([`ExecExit`]) and `end`. Input travels the other way: the client sends
//! `exec_input` and `exec_resize` requests naming the exec's request id; they
//! are answered only when they fail. Between hub and agent, input goes as
//! [`Downstream::Input`](super::Downstream::Input) frames within the input
//! credit the agent grants with `credit` replies ([`InputCredit`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `exec`: run `cmd` in `container` on `server`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The container: name, full id or unique id prefix.
    pub container: String,
    /// The command and its arguments (no shell unless you name one).
    pub cmd: Vec<String>,
    /// `-i`: keep stdin open; the client sends it with `exec_input`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// `-t`: a pseudo-terminal (stdout and stderr then arrive together as
    /// `stdout`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// `-u`: user, `name`, `uid` or `uid:gid`; the image's user when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `-w`: working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `-e`: `KEY=value` entries added to the environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `--privileged` (admins only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Terminal width in columns, with `tty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    /// Terminal height in rows, with `tty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
}

impl ExecRequest {
    /// The command as one line, for the audit log and recordings.
    pub fn command_line(&self) -> String {
        self.cmd
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                    format!("'{}'", a.replace('\'', r"'\''"))
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `exec_input`: bytes for the stdin of exec `id` (an `exec` request of the
/// same connection started with `interactive`). `data` as text or `b64`;
/// `eof` closes stdin after them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecInput {
    /// The `exec` request's id.
    #[serde(rename = "exec")]
    pub exec_id: u64,
    /// Input as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Input as base64 (any bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64: Option<String>,
    /// Close stdin (after `data` or `b64`, if any).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eof: bool,
}

/// `exec_resize`: the terminal of exec `id` is now `cols` x `rows`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecResize {
    /// The `exec` request's id.
    #[serde(rename = "exec")]
    pub exec_id: u64,
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// The `result` that ends an exec (before `end`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecExit {
    /// The command's exit code (126: it could not run; 127: not found).
    pub exit_code: i64,
    /// The hub's id of this session (`exec-sessions show`); set by the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// Agent -> hub, a `credit` reply on an exec channel: the agent took this
/// many more input bytes; the hub may send as many again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InputCredit {
    /// Bytes.
    pub bytes: u32,
}

/// `exec_sessions_list`: recorded and audited exec sessions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecSessionsList {
    /// At most this many (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only sessions on this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// One exec session as the hub keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecSession {
    /// Its id.
    pub id: String,
    /// Who ran it: the token's name.
    pub actor: String,
    /// The token's id.
    pub token_id: String,
    /// The agent.
    pub server: String,
    /// The container as named in the request.
    pub container: String,
    /// The command line.
    pub command: String,
    /// Whether it had a TTY.
    pub tty: bool,
    /// Start (RFC 3339).
    pub started: String,
    /// End (RFC 3339); absent while it runs (or if the hub stopped first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// The exit code; absent if it did not finish (error, cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why it ended without an exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes of input sent to the command.
    pub bytes_in: u64,
    /// Bytes of output it printed.
    pub bytes_out: u64,
    /// Bytes of its recording (asciicast v2), 0 when none was kept.
    pub recording_bytes: u64,
    /// The recording reached its size limit and stops with a mark.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Action;
    use serde_json::json;

    #[test]
    fn exec_payloads_read_and_quote() {
        let a = Action::parse(
            "exec",
            json!({"container": "web", "cmd": ["sh", "-c", "echo 'hi there'"], "tty": true}),
        )
        .unwrap();
        let Action::Exec(e) = a else { panic!() };
        assert!(e.tty && !e.interactive);
        assert_eq!(e.command_line(), r#"sh -c 'echo '\''hi there'\'''"#);
        let i = Action::parse("exec_input", json!({"exec": 7, "data": "ls\n"})).unwrap();
        assert_eq!(
            i,
            Action::ExecInput(ExecInput {
                exec_id: 7,
                data: Some("ls\n".into()),
                ..Default::default()
            })
        );
        assert!(Action::parse("exec_resize", json!({"exec": 7, "cols": 80})).is_err());
    }
}
