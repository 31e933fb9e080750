//! Every bound and duration of the hub, each with why. Bounds of the wire
//! (frame sizes, stream windows, heartbeats) are shared with the agent and
//! live in [`nextdeploy_shared::limits`].

use std::time::Duration;

/// How long SQLite waits on a locked store while a backup snapshots it: the
/// running hub's writes are short, so ten seconds means something is stuck.
pub const BACKUP_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
