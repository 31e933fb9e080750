//! End-to-end test harness: runs the real `nextdeploy` (hub and CLI) and
//! `nextdeploy-agent` binaries on loopback ports chosen by the OS.
//!
//! The binaries belong to other crates of the workspace, so `CARGO_BIN_EXE_*`
//! cannot name them: they are looked up in the workspace's target directory
//! (`CARGO_TARGET_DIR` honoured). Run `cargo build --workspace` first
//! (`scripts/test.sh` does).
//!
//! Every wait here is bounded; every child process is killed on drop; the
//! output of every long-running child is drained to a log file whose tail is
//! printed when a test panics.
//!
//! One module per concern: [`paths`] (binaries, temp dirs), [`process`]
//! (the one process runner, long-running children, streaming commands,
//! signals), [`hub`] and [`agent`] (the fixtures), [`ssh`] and [`sshd`]
//! (OpenSSH), [`http`] and [`ws`] (the hub's HTTP and WebSocket API),
//! [`receiver`] and [`smtp`] (an HTTP receiver and an SMTP server on loopback
//! for alert notifications; [`channel_receivers`], one of each channel kind),
//! [`procfs`] (probes of other processes), [`proxy`] (a TCP proxy whose link
//! a test cuts), [`postgres`] (a PostgreSQL server of the test's own), [`docker`] and [`deploy`] (the
//! Docker and deploy suites' fixtures), [`nspawn`] and [`booted`] (a booted systemd for
//! the install suites). The items most suites use are
//! re-exported here.

pub mod agent;
pub mod booted;
pub mod browser;
pub mod channel_receivers;
pub mod cluster;
pub mod deploy;
pub mod docker;
pub mod doclines;
pub mod flood_agent;
pub mod haproxy;
pub mod http;
pub mod hub;
pub mod netns;
pub mod nspawn;
pub mod paths;
pub mod postgres;
pub mod process;
pub mod procfs;
pub mod proxy;
pub mod receiver;
pub mod sandbox;
pub mod smtp;
pub mod ssh;
pub mod sshd;
pub mod ws;

pub use agent::{
    agent_enroll, check_enrolled_files, enroll_agent, set_config_key, wait_offline, wait_online,
    Agent,
};
pub use http::{http_get, http_request, https_get, https_request, HttpReply};
pub use hub::{cli, cli_json, start_hub, Hub, HubOpts, JoinToken, CLI_TIMEOUT, HUB_START_TIMEOUT};
pub use paths::{
    agent_bin, bin, contains_bytes, free_port, hub_bin, read_tree, tail, target_dir,
    workspace_root, TempDir,
};
pub use process::{
    parse_signal, run_bounded, run_raw, send_signal, wait_until, wait_until_ok, ContOnDrop, Output,
    Proc, RawOutput,
};
pub use procfs::{cpu_time, pids_matching, rss_bytes, tcp_connections_of};
pub use serde_json::json;
pub use ssh::{keyscan_fingerprint, ssh_keygen, ssh_with_key, SilentClient};
pub use ws::{ws_connect, ws_connect_with, ws_refusal_status, ws_request, Ws, WsEvent};
