//! Bounds of the protocol. Every queue, frame and wait has one, and each says why.

use std::time::Duration;

/// Largest frame on an agent channel and largest WebSocket message (1 MiB). A log
/// line, a stats sample or an inspect document fits many times over; anything
/// larger is a bug or an attack and is refused before it is allocated.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Bytes an agent may send on one stream before the hub grants more credit
/// (2 MiB). Two maximal frames, so a full-size frame never deadlocks, while
/// a stream's buffered bytes at the hub stay bounded by this figure.
pub const STREAM_WINDOW: u32 = 2 * 1024 * 1024;

/// The hub returns credit once this many bytes have been delivered onward, so
/// credit frames cost one small frame per 256 KiB rather than one per message.
pub const CREDIT_BATCH: u32 = 256 * 1024;

/// Concurrent streams (open requests) the hub keeps on one agent. Each costs one
/// SSH channel and at most [`STREAM_WINDOW`] of hub memory.
pub const MAX_STREAMS_PER_AGENT: usize = 256;

/// Messages queued towards one WebSocket client before its producers wait.
/// A hub-only bound, defined in the hub's `limits` module; kept here only for
/// `tests/` (which does not depend on the hub crate), and the hub asserts at
/// compile time that both figures agree. Not part of the wire.
#[doc(hidden)]
pub const CLIENT_SEND_QUEUE: usize = 256;

/// How often the agent sends an application heartbeat on its control channel.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Silence after which either side gives the connection up (three heartbeats).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the hub waits for an agent to answer a plain request (ping, info).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Reconnect backoff of the agent: first retry cap, ceiling, and the stable
/// period after which the backoff resets.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Ceiling of the reconnect backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A connection that stayed up this long resets the backoff.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// Lifetime of an API token created without one (`ttl_s` absent, no
/// `no_expiry`): a token forgotten in a CI secret or a laptop stops working
/// within a quarter; a token meant to last is asked for explicitly.
pub const API_TOKEN_DEFAULT_TTL: Duration = Duration::from_secs(90 * 86_400);

/// Default lifetime of a join token.
pub const JOIN_TOKEN_DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Longest agent name; names are also used in file names and log lines.
pub const MAX_NAME_LEN: usize = 63;

/// Most labels an agent may carry, and the longest key or value.
pub const MAX_LABELS: usize = 32;
/// Longest label key or value.
pub const MAX_LABEL_LEN: usize = 128;

/// Input bytes the hub may send an exec ahead of what the agent wrote to the
/// command's stdin (256 KiB): a paste goes at once, a gigabyte piped in waits
/// for the command, and the agent's queue stays bounded by this figure.
pub const EXEC_INPUT_WINDOW: u32 = 256 * 1024;

/// What one input frame costs of the window at least (bytes): a stream of
/// one-byte frames (keystrokes) is bounded in frames too, by
/// `EXEC_INPUT_WINDOW / EXEC_INPUT_FRAME_COST`. Resizes and end-of-file cost it too.
pub const EXEC_INPUT_FRAME_COST: u32 = 64;

/// Largest input frame the hub sends an agent (bytes before base64): a
/// client's larger `exec_input` is cut into pieces this size.
pub const EXEC_INPUT_CHUNK: usize = 32 * 1024;

/// What an exec input frame of `bytes` bytes costs of the window.
pub fn exec_input_cost(bytes: usize) -> u32 {
    (bytes as u32).max(EXEC_INPUT_FRAME_COST)
}
