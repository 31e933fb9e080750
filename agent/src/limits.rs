//! Every agent-side bound and duration, each with the reason for its value.
//! Bounds that are part of the wire contract with the hub (frame size, stream
//! window, heartbeat, reconnect backoff) stay in [`nextdeploy_shared::limits`].

use std::time::Duration;

// --- Connection to the hub ---

/// How long dialling plus the SSH handshake may take: generous for a slow
/// link, short enough that a black-holed address is retried soon.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// SSH-level silence after which russh drops the connection: well past the
/// keepalive's own verdict (~45 s), so it only catches a wedged transport.
pub const SSH_INACTIVITY_TIMEOUT: Duration = Duration::from_secs(90);

/// Between SSH keepalives, so a dead hub is noticed without application traffic.
pub const SSH_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Unanswered SSH keepalives before the hub counts as gone (3 x 15 s = 45 s).
pub const SSH_KEEPALIVE_MAX: usize = 3;

/// How often an agent started with `--parent-pid` (the hub's `--local-agent`)
/// checks that its parent is still there: it exits within this much of a
/// `kill -9` of the hub, so a restarted hub never meets the old agent.
pub const PARENT_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Backoff after the hub refused the connection because another connection
/// with this key is online (two agents sharing one key): long, since only an
/// operator can end that, and every try costs the other agent nothing.
pub const KEY_CONFLICT_BACKOFF: Duration = Duration::from_secs(60);
/// Shortest reconnect delay after jitter, so a run of near-zero draws cannot
/// turn into a busy loop of dials.
pub const BACKOFF_FLOOR: Duration = Duration::from_millis(50);

// --- Channels ---

/// How long the hub has to send the first frame of a channel it opened.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Replies a handler may queue ahead of the writer; the writer itself waits
/// for credit, so this only smooths bursts.
pub const HANDLER_QUEUE: usize = 16;

/// Answers of one-shot requests waiting for the control channel's writer.
/// Each running request holds at most one, and their number is capped at
/// [`MAX_STREAMS_PER_AGENT`](nextdeploy_shared::limits::MAX_STREAMS_PER_AGENT),
/// so the tasks wait here rather than buffer.
pub const CONTROL_ANSWER_QUEUE: usize = 64;

/// Pushed replies (health snapshots, events) waiting for the control channel.
/// A slow or absent connection loses the oldest from this queue; snapshots and
/// events are also in the on-disk buffer, which replays what the hub lacks.
pub const PUSH_QUEUE: usize = 256;

// --- Buffer (snapshots and events kept while the hub is out of reach) ---

/// Default bound of the on-disk buffer (`--buffer-max-bytes`): a 10-minute
/// outage of 200 containers' 5 s snapshots (about 70 KiB each, 8.4 MiB) fits
/// whole, and a small host keeps hours.
pub const DEFAULT_BUFFER_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Smallest bound accepted: two of the largest records (a frame each) and
/// room to thin.
pub const MIN_BUFFER_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Largest bound accepted (4 GiB): the index of a buffer is in memory
/// (about 40 bytes a record).
pub const MAX_BUFFER_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// A buffer is this many segment files at its bound: thinning rewrites one
/// segment at a time, so a segment is the most one step reads and writes.
pub const BUFFER_SEGMENTS: u64 = 16;
/// Bytes of the buffer replayed per [`REPLAY_TICK`] (2.5 MiB/s): a full
/// 16 MiB buffer in under 7 s, while the hub's history queue (64 MiB) and
/// its writer keep up, and live frames never wait behind more than one tick.
pub const REPLAY_BYTES_PER_TICK: usize = 64 * 1024;
/// Between two replay batches.
pub const REPLAY_TICK: Duration = Duration::from_millis(25);

// --- Enrolment and key rotation ---

/// How long the hub has to answer the enrolment once the secret is sent.
pub const ENROLL_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `enroll` waits for the outcome after connecting: longer than
/// [`ENROLL_ANSWER_TIMEOUT`] so the channel's own, more precise error wins.
pub const ENROLL_OUTCOME_WAIT: Duration = Duration::from_secs(40);

/// Shortest nonce the hub may ask the agent to sign: a short one could be
/// replayed or chosen to collide.
pub const MIN_NONCE_LEN: usize = 32;

// --- Diagnostic stream (`diag_stream`) ---

/// Largest total a diagnostic stream may ask for (10 GiB): enough to measure
/// throughput for minutes, not enough to run forever.
pub const DIAG_MAX_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// Largest chunk per reply (256 KiB, well under the frame limit).
pub const DIAG_MAX_CHUNK: u64 = 256 * 1024;
/// Default total of a diagnostic stream (1 MiB): a quick check.
pub const DIAG_DEFAULT_BYTES: u64 = 1024 * 1024;
/// Default chunk of a diagnostic stream (16 KiB), like a busy log stream's.
pub const DIAG_DEFAULT_CHUNK: u64 = 16 * 1024;

// --- Docker Engine ---

/// How long a status probe or version negotiation may take: the engine is
/// local, so a slower answer means it is stuck.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// First retry delay of the event watcher while the engine is unavailable.
pub const EVENTS_RETRY_MIN: Duration = Duration::from_secs(1);
/// Ceiling of the event watcher's doubling retry delay: a restarted engine is
/// picked up within this long.
pub const EVENTS_RETRY_MAX: Duration = Duration::from_secs(10);

/// Default seconds between health snapshots pushed to the hub (config
/// `health_interval_s`): fresh enough for a dashboard, cheap for the engine.
pub const DEFAULT_HEALTH_INTERVAL_S: u64 = 5;

/// Longest stop or restart grace period, in seconds (one hour): beyond that a
/// typo, not a plan.
pub const MAX_STOP_GRACE_S: i64 = 3600;

/// Container names suggested when a wanted name matches none.
pub const NAME_SUGGESTIONS: usize = 3;

// --- Stats ---

/// Samples taken at once in a sweep. Docker (20.10 here) answers a one-shot
/// request at its stats collector's next tick (every second) whenever the
/// collector is already running; concurrent requests share that tick. So one
/// at a time costs up to a second per container (measured: 50 containers took
/// 49 s), while all at once cost about one tick per sweep (16 at once: 1.0 s).
pub const SWEEP_CONCURRENCY: usize = 64;
/// How often a streaming `stats` request samples (Docker's own tick).
pub const STATS_STREAM_INTERVAL: Duration = Duration::from_secs(1);
/// A cached previous sample older than this is not used for CPU.
pub const MAX_PREV_AGE_MS: i64 = 30_000;
/// CPU is computed over at least this interval (shorter ones are noise).
pub const CPU_MIN_INTERVAL_MS: i64 = 200;
/// The kept sample is replaced by one at least this much newer.
pub const REPLACE_AFTER_MS: i64 = 900;
/// A one-shot `stats` without a recent sample takes a first one, waits this
/// long, then samples again, so CPU is computed over more than
/// [`CPU_MIN_INTERVAL_MS`].
pub const FIRST_SAMPLE_WAIT: Duration = Duration::from_millis(500);

// --- Exec ---

/// Read buffer for an exec's output (bytes): one read of the engine's
/// stream, sent as one `log` reply at most this size.
pub const EXEC_READ_CAPACITY: usize = 64 * 1024;
/// Input frames queued for an exec's stdin: what the input window allows at
/// the smallest frame cost, plus one end-of-file. The hub keeps within its
/// credit, so the queue is never full; a hub that overruns it is cut off.
pub const EXEC_INPUT_QUEUE: usize = (nextdeploy_shared::limits::EXEC_INPUT_WINDOW
    / nextdeploy_shared::limits::EXEC_INPUT_FRAME_COST)
    as usize
    + 1;
/// After the command's output ends, how long the agent waits for the engine
/// to report its exit code.
pub const EXEC_EXIT_WAIT: Duration = Duration::from_secs(5);
/// Between two looks at whether the command has exited.
pub const EXEC_EXIT_POLL: Duration = Duration::from_millis(20);

// --- Logs and files ---

/// An unterminated log line is sent once it reaches this size (well under
/// the frame cap).
pub const LOG_MAX_PENDING: usize = 512 * 1024;
/// Whole log lines are batched into one reply up to about this size.
pub const LOG_BATCH: usize = 64 * 1024;
/// An unterminated log line waits this long for more bytes before it is sent.
pub const LOG_FLUSH_AFTER: Duration = Duration::from_millis(200);

/// Files kept open at most (about seven per container). Past this, files
/// are read by path and closed as before: an agent's soft limit on open
/// files is often 1,024, and its connection and Docker socket need some.
pub const MAX_OPEN_FILES: usize = 512;
/// The largest file read: memory.stat (v1, about 1.5 KiB), net/dev with many
/// interfaces. A longer file is refused rather than read in part.
pub const MAX_FILE_LEN: usize = 256 * 1024;
/// First read of a small kernel file (`/proc`, cgroup): most fit in one page.
pub const FILE_READ_START: usize = 4096;

// --- Deploys ---

/// Progress events kept per running deploy, for a re-attaching hub.
pub const PROGRESS_BACKLOG: usize = 1024;
/// Pull progress of one deploy is forwarded at most this often (layer
/// completion always), so a big pull does not flood the hub.
pub const PULL_PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// How long a container without a healthcheck must stay up to count as healthy.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);
/// Polling period while waiting for health.
pub const HEALTH_POLL: Duration = Duration::from_millis(250);
/// Default wait for the new container to become healthy, in seconds.
pub const DEFAULT_HEALTH_TIMEOUT_S: u64 = 300;
/// Longest health wait a deploy may ask for (one hour), in seconds.
pub const MAX_HEALTH_TIMEOUT_S: u64 = 3600;
/// Grace of the failed new container stopped by a rollback, in seconds: it
/// is being thrown away, so the old one should be back quickly.
pub const ROLLBACK_STOP_GRACE_S: i32 = 5;
/// Log lines of a failed new container kept in the deploy's outcome.
pub const FAILURE_LOG_LINES: usize = 20;
/// How long reading a failed container's last logs may take.
pub const FAILURE_LOG_WAIT: Duration = Duration::from_secs(5);
/// Most bytes of a failed container's last logs kept in the outcome.
pub const FAILURE_LOG_MAX_BYTES: usize = 64 * 1024;
/// Docker's stop timeout for a container that sets none, in seconds (shown
/// in deploy progress: "stopping the old container (stop timeout 10 s)").
pub const DOCKER_DEFAULT_STOP_TIMEOUT_S: i32 = 10;
/// Longest deploy id the agent accepts (it names a journal file). The hub's
/// ids are 24 hex digits; 128 leaves room and stays far below a file name's
/// 255 bytes.
pub const MAX_DEPLOY_ID_LEN: usize = 128;
