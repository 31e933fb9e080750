//! Every bound and duration of the hub, each with why. Bounds of the wire
//! (frame sizes, stream windows, heartbeats) are shared with the agent and
//! live in [`nextdeploy_shared::limits`].

use std::time::Duration;

// --- ssh ---

/// How long a rejected SSH authentication waits before answering (russh's
/// constant-time delay), so timing does not tell which keys exist.
pub const AUTH_REJECTION_TIME: Duration = Duration::from_millis(500);
/// How long the accept loop backs off after a failed `accept` (EMFILE and
/// friends), instead of spinning on an error that persists.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// How often the hub probes a quiet connection with an SSH keepalive, and how
/// many unanswered probes end it: a dead peer is noticed within ~30 s even if
/// the application heartbeat were lost.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered SSH keepalives that end a connection (see [`KEEPALIVE_INTERVAL`]).
pub const KEEPALIVE_MAX: usize = 3;
/// Nothing at all received for this long ends the connection (the agent
/// heartbeats every 10 s, so only a broken peer gets here).
pub const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(90);
/// Failed authentication attempts allowed per connection; agents need one.
pub const MAX_AUTH_ATTEMPTS: usize = 3;
/// The largest channel packet the hub asks agents to send: a streamed 64 KiB
/// log chunk fits one packet, and both sides read up to 256 KiB.
pub const MAX_PACKET: u32 = 128 * 1024;
/// Penalty a source earns when a key is refused on one of its connections
/// (OpenSSH's `PerSourcePenalties authfail`, 5 s): an agent needs one try.
pub const AUTH_FAIL_PENALTY: Duration = Duration::from_secs(5);
/// Penalty a source earns when one of its connections runs out the
/// authentication deadline (OpenSSH's `grace-exceeded`, 10 s): a real client
/// authenticates in milliseconds or gives up.
pub const DEADLINE_PENALTY: Duration = Duration::from_secs(10);
/// Penalty that must build up before a source is refused (OpenSSH's `min`,
/// 15 s): a typo or two and a timed-out dial are forgiven, a flood is not.
pub const PENALTY_MIN: Duration = Duration::from_secs(15);
/// Longest penalty (OpenSSH's `max`, 10 min): a source behind a shared
/// address is not locked out for long.
pub const PENALTY_MAX: Duration = Duration::from_secs(600);
/// How long a source from which a connection authenticated is never
/// penalised: longer than agents' longest backoff, so a NAT address full of
/// agents stays trusted between their reconnects.
pub const TRUSTED_FOR: Duration = Duration::from_secs(3600);
/// Penalised and trusted sources tracked, each (OpenSSH's `max-sources`,
/// 65536): about 100 bytes each, so a few MB at most; past it expired
/// entries are dropped, and if all are live new penalties are skipped
/// (the caps still hold).
pub const MAX_TRACKED_SOURCES: usize = 65_536;
/// Accepted connections that may wait for a handshake slot. Waiting costs a
/// socket and a small task (well under 1 KiB) but no SSH state, and the
/// authentication deadline runs from the accept, so a connection that waits
/// longer than the deadline is closed unserved. Accepting right away keeps
/// the kernel's accept queue empty: when it overflows during a reconnect
/// storm the kernel drops the agents' handshakes, they retransmit on TCP's
/// timers (1 s, 3 s, ...) and some end in resets.
pub const ACCEPT_QUEUE: usize = 8192;

// --- ssh::session ---

/// Connections that authenticated and have not registered (said hello, or
/// finished enrolling) at once. A healthy agent stays in that state for one
/// round trip, so even a reconnect storm through all
/// [`DEFAULT_MAX_HANDSHAKES`] slots keeps far fewer there; only a holder of
/// an enrolled key or a join token id can fill it, and then each further
/// session is refused at once instead of holding a task for
/// [`HELLO_TIMEOUT`]. The default's; a hub with more slots gets more room.
pub const MAX_UNREGISTERED: usize = UNREGISTERED_PER_HANDSHAKE * DEFAULT_MAX_HANDSHAKES;
/// Unregistered connections allowed per handshake slot (`--max-handshakes`).
pub const UNREGISTERED_PER_HANDSHAKE: usize = 4;

/// Shortest re-wait for a heartbeat when answers showed life recently: keeps
/// the loop from spinning on sub-second remainders.
pub const HEARTBEAT_RECHECK_MIN: Duration = Duration::from_secs(1);

// --- agents::conflict ---

/// Replacements of one agent's connection by a newer one with the same key
/// tolerated within [`KEY_FLAP_WINDOW`]. A restart replaces a connection the
/// hub has not yet seen die once; two agents sharing a key replace each other
/// every 1-3 s (their backoff), so a fifth replacement in a minute is them.
pub const KEY_FLAP_MAX_REPLACEMENTS: usize = 4;
/// The window [`KEY_FLAP_MAX_REPLACEMENTS`] counts over.
pub const KEY_FLAP_WINDOW: Duration = Duration::from_secs(60);
/// How long a declared key conflict holds after its last refusal: longer than
/// the refused agent's backoff (`KEY_CONFLICT_BACKOFF`, 60 s), so its next
/// try is refused too while the kept agent is online.
pub const KEY_CONFLICT_HOLD: Duration = Duration::from_secs(600);
/// How long the hub lingers after an enrolment outcome so the agent can read
/// it and hang up itself.
pub const ENROLL_LINGER: Duration = Duration::from_secs(5);
/// How long after enrolling an agent may withdraw its enrolment with its key
/// (`WITHDRAW_USER`): an install script undoes a failed run within seconds;
/// after this the enrolment can only be revoked by an admin.
pub const WITHDRAW_WINDOW: Duration = Duration::from_secs(900);
/// How long an authenticated agent has, in all, to accept the control
/// channel and say hello: a healthy agent answers in two round trips; a
/// silent one must not hold a task and a [`MAX_UNREGISTERED`] place.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long used and expired join tokens are kept before they are deleted:
/// they enrol nothing, and only tell an admin (`join-token list`) why an
/// install failed, which a week covers; the audit log keeps each enrolment.
pub const JOIN_TOKEN_RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// How often join tokens past [`JOIN_TOKEN_RETENTION`] are pruned: hourly
/// keeps a table of a few hundred rows near its bound for one cheap scan.
pub const JOIN_TOKEN_PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long an enrolling agent has to present its secret: it has it at hand,
/// so this only bounds a peer that went silent.
pub const ENROLL_TIMEOUT: Duration = Duration::from_secs(15);

// --- ssh::tap ---
/// Events queued per connection before the reader waits: heartbeats and
/// pushes are small and the task drains them at once, so 32 absorbs a burst.
pub const INBOX_LEN: usize = 32;

// --- agents::stream ---
/// How long opening a channel on an agent may take: one round trip on a live
/// connection, so ten seconds means the agent is gone.
pub const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

// --- http::ws ---
/// Bytes of queued replies written to a client before one flush: enough to
/// turn a burst of small replies into a few large writes, small enough that
/// a log stream's first bytes are not held back.
pub const SEND_BATCH_BYTES: usize = 256 * 1024;

// --- api::deploy ---

/// How often a deploy polls the registry for its agent's reconnection: a
/// reconnect takes about a second, so this adds little delay and little CPU.
pub const RECONNECT_POLL: Duration = Duration::from_millis(200);
/// Progress messages buffered towards a watching client; beyond this, progress
/// (advisory) is dropped for that client, never the outcome.
pub const PROGRESS_QUEUE: usize = 1024;
/// Longest image reference accepted: real references are well under it, and
/// it bounds what the hub stores and forwards per deploy.
pub const MAX_IMAGE_LEN: usize = 512;
/// Times the hub re-asks a reconnected agent about a deploy it lost track of.
pub const DEPLOY_RETRIES: usize = 3;
/// How long the hub waits for an agent to reconnect during a deploy (the
/// agent's backoff after a drop starts at one second).
pub const RECONNECT_WAIT: Duration = Duration::from_secs(90);
/// Most agents a fleet deploy updates at once, so one deploy cannot hold every
/// stream slot and store write at the same moment.
pub const MAX_PARALLEL_DEPLOYS: u64 = 100;
/// Deploys `deploys_list` returns by default, and at most.
pub const DEPLOYS_LIST_DEFAULT: u64 = 50;
/// Most deploys `deploys_list` returns, bounding one reply's size.
pub const DEPLOYS_LIST_MAX: u64 = 1000;
/// Audit entries `audit_list` returns by default: a screenful.
pub const AUDIT_LIST_DEFAULT: u64 = 100;
/// Most audit entries one `audit_list` returns, bounding one reply's size
/// (a few hundred bytes each); older ones are read with `before`.
pub const AUDIT_LIST_MAX: u64 = 1000;
/// Progress steps the hub keeps per running deploy for `deploys_show`
/// (and `--follow`); pull progress is not kept. A deploy has a few dozen.
pub const LIVE_STEPS_MAX: usize = 512;
/// How often `deploys show ID --follow` polls a running deploy.
pub const DEPLOY_FOLLOW_POLL: Duration = Duration::from_millis(500);
/// Longest canary health window a fleet deploy may ask for (one hour).
pub const MAX_CANARY_WAIT_S: u64 = 3600;

// --- api::fleet ---
/// Look-back of `history` when none is given (one hour).
pub const HISTORY_DEFAULT_SINCE_S: i64 = 3600;

// --- api::rotate ---
/// How long the agent has for each step (key generation is milliseconds).
pub const ROTATE_STEP_TIMEOUT: Duration = Duration::from_secs(15);

// --- api::fanout ---
/// Answers taken off the queue per wake: amortizes the wake-up without
/// holding a large batch in memory.
pub const FANOUT_BATCH: usize = 256;
/// Requests written between two yields of the fan-out's task, so a fan-out
/// to thousands of agents does not starve the runtime's other tasks.
pub const FANOUT_YIELD_EVERY: usize = 128;

// --- api::route ---
/// Grace a stop or restart gets by default (the engine's default, 10 s).
pub const DEFAULT_STOP_GRACE_S: u64 = 10;
/// Longest grace a stop or restart may ask for: the request waits that long,
/// and an hour is beyond any sane shutdown.
pub const MAX_STOP_GRACE_S: u64 = 3600;

// --- api::admin ---
/// Longest TTL a token may be given (10 years).
pub const MAX_TTL_S: u64 = 10 * 365 * 86_400;
/// Longest API token name: names are labels shown in lists and audit lines.
pub const MAX_TOKEN_NAME_LEN: usize = 64;

// --- serve (flags and the local agent) ---

/// Default of `--auth-deadline`: a handshake takes milliseconds; 15 s leaves
/// room for a slow link and still frees a handshake slot quickly.
pub const DEFAULT_AUTH_DEADLINE: Duration = Duration::from_secs(15);
/// Longest `--auth-deadline` accepted: beyond it the deadline protects nothing.
pub const MAX_AUTH_DEADLINE: Duration = Duration::from_secs(600);
/// Default of `--max-handshakes`: handshakes cost CPU (key exchange); 256 at
/// once keeps a reconnect storm from starving established connections.
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;
/// Default of `--max-handshakes-per-ip`: one address cannot take every slot,
/// while a NAT with many agents still gets a fair share.
pub const DEFAULT_MAX_HANDSHAKES_PER_IP: usize = 64;
/// Default of `--max-handshakes-per-prefix`: half the handshake slots, so
/// one network (a /24, a /64) never holds more than half of them; twice the
/// per-address cap, so an office or a NAT pool still gets its share.
pub const DEFAULT_MAX_HANDSHAKES_PER_PREFIX: usize = DEFAULT_MAX_HANDSHAKES / 2;
/// Default of `--source-prefix-v4`: a /24 is the smallest block routed on
/// the Internet, so what one party usually holds.
pub const DEFAULT_SOURCE_PREFIX_V4: u8 = 24;
/// Default of `--source-prefix-v6`: a /64 is one subnet, handed whole to a
/// single host or customer.
pub const DEFAULT_SOURCE_PREFIX_V6: u8 = 64;
/// Shortest `--heartbeat-timeout`: below it, one late heartbeat (sent every
/// third of the timeout) would mark a healthy agent offline.
pub const MIN_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// Lifetime of the join token the hub mints for `--local-agent`: it is used
/// at once by the child it spawns, so minutes are plenty.
pub const LOCAL_JOIN_TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long a stopping local agent has after SIGTERM before it is killed.
pub const LOCAL_AGENT_STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the hub waits for its local-agent task at exit.
pub const LOCAL_AGENT_JOIN_WAIT: Duration = Duration::from_secs(10);
/// Connections the kernel may queue for `accept` (capped by
/// `net.core.somaxconn`, 4096 by default since Linux 5.4). A restarted hub
/// gets thousands of agents within a second; with the usual 1024 the rest of
/// their SYNs are dropped and each such agent waits out TCP's 1 s, 3 s, 7 s
/// retransmission timers instead of the handshake slots.
pub const LISTEN_BACKLOG: u32 = 4096;

// --- telemetry ---
/// Events buffered for subscribers; one that falls further behind is told how
/// many it missed instead of holding memory.
pub const EVENT_BUS: usize = 4096;
/// Events kept per agent for `events` with `since` (`recent.rs`): enough for
/// a crash loop's last minutes (a restart is 3 to 4 events: die, start,
/// restart, health) on a page opened after it.
pub const EVENT_RING_LEN: usize = 64;
/// And at most this many bytes per agent by `recent::cost` (about 400 for a
/// usual container event: the 64 fit), so 10,000 agents hold at most about
/// 320 MiB whatever they send. Measured with a counting allocator: 64 usual
/// events (a 64-hex id, a name, an image) take 22 KiB of heap, 210 MiB for
/// 10,000 agents.
pub const EVENT_RING_BYTES: usize = 32 * 1024;
/// Snapshots waiting to be written: 10,000 agents' worth of one interval. A full
/// queue drops snapshots (history loses a point; the live view does not).
pub const HEALTH_QUEUE: usize = 10_000;
/// The history writer writes what has gathered at most this often (one
/// batch of transactions per interval rather than a commit per snapshot):
/// the history is at most this much behind the live view.
pub const HEALTH_WRITE_EVERY: Duration = Duration::from_secs(1);
/// Most snapshots taken in one write (written in transactions of at most
/// [`HEALTH_TX_CONTAINERS`] containers): three intervals' worth of 10,000
/// agents' 5 s snapshots at one write a second, so the writer keeps up even
/// when a write takes longer than [`HEALTH_WRITE_EVERY`].
pub const HEALTH_BATCH: usize = 6_000;
/// How often old history is pruned: retention tiers are minutes to days, so
/// five minutes keeps the tables near their bound at little cost.
pub const PRUNE_EVERY: Duration = Duration::from_secs(300);
/// How often the history writer packs the windows that are due.
pub const HISTORY_COMPACT_EVERY: Duration = Duration::from_secs(2);
/// Windows packed per round (about a millisecond each): 100 a second keeps
/// up with 10,000 agents' three tiers (about 20 windows a second) and
/// drains the burst when every agent's window ends at the same moment in
/// under two minutes, while snapshots wait at most a round behind it.
pub const HISTORY_COMPACT_WINDOWS: usize = 200;

// --- backup ---

/// Largest store a restore accepts (16 GiB; streamed to disk, never held in
/// memory): history is pruned to its retention, so a hub's store stays far
/// below; a bigger claim is not ours.
pub const MAX_BACKUP_MEMBER: u64 = 16 * 1024 * 1024 * 1024;
/// How long SQLite waits on a locked store while a backup snapshots it: the
/// running hub's writes are short, so ten seconds means something is stuck.
pub const BACKUP_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

// --- lib (shutdown) and store ---

/// How long shutdown waits for connection tasks and the telemetry writer to
/// finish: long enough for clean closes, short enough for service managers.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// How long a store call waits on SQLite's lock before failing: writes are
/// short, so longer means a stuck writer, better reported than waited on.
pub const STORE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to a PostgreSQL store may take (unless the URL sets
/// `connect_timeout`): an unreachable server is an error, not a hang.
pub const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalives probe a PostgreSQL connection, so a
/// server that vanished from the network is noticed (and the connection
/// opened again) rather than waited on forever.
pub const PG_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// How long a hub on a PostgreSQL store keeps the agents' label index (what
/// selectors match) before reading it again: its own enrolments and
/// revocations drop it at once, other hubs' show within this.
pub const PG_LABEL_INDEX_TTL: Duration = Duration::from_secs(1);
/// How long one statement may run on a PostgreSQL store before the server
/// cancels it (a lock held by a stuck hub, a runaway query): as
/// `STORE_BUSY_TIMEOUT` for SQLite, a failure reported, not a wait.
pub const PG_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

// --- http::ws (hub-only: the agent never sees a WebSocket) ---

/// Concurrent requests one WebSocket client may have in flight, so one client
/// cannot take every agent's stream slots.
pub const MAX_REQUESTS_PER_CLIENT: usize = 64;
/// Messages queued towards one WebSocket client before its producers wait:
/// a slow client slows its own streams, not the hub's memory.
pub const CLIENT_SEND_QUEUE: usize = 256;
// tests/ (which does not depend on the hub) still reads the queue's size from
// shared; the two must agree.
const _: () = assert!(CLIENT_SEND_QUEUE == nextdeploy_shared::limits::CLIENT_SEND_QUEUE);

// --- http::conns and agents::slots (budgets one role cannot exhaust for another) ---

/// Default of `--max-connections-per-token`: WebSocket connections one API
/// token may hold open at once. A CLI uses one per command and a dashboard a
/// few; 32 covers a script running commands in parallel, while one leaked or
/// looping token cannot hold thousands of connections (each up to
/// [`MAX_REQUESTS_PER_CLIENT`] requests) against everyone else.
pub const DEFAULT_MAX_CONNECTIONS_PER_TOKEN: usize = 32;
/// Stream slots of one agent that requests made with viewer tokens may hold
/// together: three quarters of
/// [`MAX_STREAMS_PER_AGENT`](nextdeploy_shared::limits::MAX_STREAMS_PER_AGENT),
/// so viewers following logs and stats across a fleet still leave 64 slots
/// on every agent to operators and admins (`stop`, `deploy`), which draw from
/// the whole pool.
pub const VIEWER_STREAMS_PER_AGENT: usize =
    nextdeploy_shared::limits::MAX_STREAMS_PER_AGENT / 4 * 3;
const _: () = assert!(VIEWER_STREAMS_PER_AGENT < nextdeploy_shared::limits::MAX_STREAMS_PER_AGENT);

// --- backup (restore) ---

/// Largest host key, certificate or TLS key a restore accepts (1 MiB): they
/// are a few KiB; a bigger claim is not ours.
pub const MAX_BACKUP_KEY_MEMBER: u64 = 1024 * 1024;

// --- telemetry::bounds and the health writer ---

/// Largest health snapshot, in bytes of JSON: a snapshot arrives in one
/// control frame, and the frame decoder refuses a frame over
/// [`MAX_FRAME_LEN`](nextdeploy_shared::limits::MAX_FRAME_LEN) before
/// allocating it, so no bigger snapshot is ever buffered. Named here so the
/// bound is explicit; [`MAX_SNAPSHOT_CONTAINERS`] keeps real ones well under it.
pub const MAX_SNAPSHOT_BYTES: usize = nextdeploy_shared::limits::MAX_FRAME_LEN;
/// Containers kept from one snapshot; the rest are dropped with a warning. A
/// container is about 350 bytes of JSON (so a 1 MiB frame holds about 3,000),
/// and a Docker host runs tens to a few hundred: 1,000 is a busy host with
/// margin, and bounds the history rows one snapshot costs (3 per container).
pub const MAX_SNAPSHOT_CONTAINERS: usize = 1000;
/// Longest string field of a pushed container (id, name, image, state,
/// health, ...), in bytes; longer ones are cut at a character boundary. Ids
/// are 64 hex digits and names at most a few dozen; 512 holds any image
/// reference with its digest (as [`MAX_IMAGE_LEN`]).
pub const MAX_SNAPSHOT_FIELD_LEN: usize = 512;
/// A snapshot's time more than this from the hub's clock is replaced by the
/// hub's: NTP keeps real clocks within a second, so a minute only catches a
/// broken clock (or a hostile agent writing into the past or the future,
/// where the retention tiers would keep it forever or prune it at once).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// An agent's snapshots closer than this to its previous one update the live
/// view but not the history: agents push every 1 s at the fastest
/// (`health_interval_s` >= 1, 5 s by default), so only a flood is thinned,
/// to one snapshot's worth of writes per second per agent.
pub const HEALTH_MIN_GAP: Duration = Duration::from_millis(900);

/// How often the hub stores and acknowledges what it took from an agent's
/// buffer while records come live: one small store write per agent per
/// 10 s (1,000 a second for 10,000 agents); the agent keeps at most that
/// much unacknowledged (two snapshots and their events), and a hub killed
/// with -9 may take those again.
pub const BUFFER_ACK_EVERY: Duration = Duration::from_secs(10);
/// The same while an agent replays its buffer (`late` records): the agent
/// trims its buffer as the replay goes, and an interrupted replay resumes
/// within a second of where it was.
pub const BUFFER_ACK_EVERY_LATE: Duration = Duration::from_secs(1);
/// Ranges of sequence numbers kept per agent: each replay cut short by a
/// lost link adds at most one gap. Past this the two closest ranges merge
/// (the records between them are counted as taken: lost, never doubled).
pub const MAX_SEQ_RANGES: usize = 64;
/// Oldest late snapshot written into the history: the 5 s tier keeps an
/// hour, and a row must be packed (and rolled up into the coarse tiers)
/// before the pruner deletes it.
pub const LATE_MAX_AGE: Duration = Duration::from_secs(50 * 60);
/// Bytes of snapshots waiting to be written to the history (estimated from
/// their strings plus a fixed cost per container): 64 MiB is 10,000 agents of
/// 20 containers each, and what the queue may cost at most whatever agents send.
pub const HEALTH_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Containers written to the history per transaction (three upserts each):
/// about 20 ms of SQLite's write lock, so anything else waiting to write
/// (an enrolment, a token) waits at most that long behind the history.
pub const HEALTH_TX_CONTAINERS: usize = 2_000;
/// Dashboard sessions kept in memory at once (`POST /api/session`). A session
/// costs about 200 bytes, so 10,000 is 2 MB; a team signs in tens. At the cap
/// a new sign-in is refused (429): ending someone else's session instead
/// would let one token holder sign everyone else out.
pub const MAX_SESSIONS: usize = 10_000;
/// Dashboard sessions one API token may hold: at its cap a new sign-in ends
/// that token's oldest session (its own old tabs, never another token's), so
/// a script signing in in a loop holds at most this many.
pub const MAX_SESSIONS_PER_TOKEN: usize = 32;
/// How long a dashboard session lasts from sign-in (or less, if its token
/// expires first): a working day, after which the browser asks for the token
/// again. Signing out or revoking the token ends it at once.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Largest `POST /api/session` body: `{"token": "nda_<id>_<secret>"}` is
/// under 100 bytes; 4 KiB leaves room for whitespace and nothing else.
pub const SIGNIN_BODY_MAX: usize = 4096;
/// Embedded dashboard files smaller than this are served as they are: a gzip
/// header and trailer cost about 20 bytes, which outweighs what a tiny file saves.
pub const GZIP_MIN_BYTES: usize = 256;

// --- exec ---

/// Input messages queued for one exec at the hub (each at most
/// [`nextdeploy_shared::limits::EXEC_INPUT_CHUNK`]): past this, the client's
/// connection waits until the command takes its input.
pub const EXEC_CLIENT_QUEUE: usize = 64;
/// A recording is written to the store in pieces of about this size...
pub const RECORDING_CHUNK: usize = 64 * 1024;
/// ...or at least this often while output flows.
pub const RECORDING_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Default bound of one session's recording (`--exec-recording-max-bytes`).
pub const DEFAULT_RECORDING_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default bound of all recordings together (`--exec-recordings-total-bytes`);
/// the oldest are dropped past it.
pub const DEFAULT_RECORDINGS_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;
/// Room kept in a recording for the mark that says it was truncated.
pub const RECORDING_MARK_RESERVE: u64 = 256;
/// Sessions `exec_sessions_list` answers by default, and at most.
pub const EXEC_SESSIONS_DEFAULT_LIMIT: u32 = 50;
/// Most sessions one `exec_sessions_list` answers.
pub const EXEC_SESSIONS_MAX_LIMIT: u32 = 1000;

// --- alerts ---

/// Events and snapshots queued for the alert evaluator. Ingestion never
/// waits on it: past this the input is dropped and counted (a fleet of
/// 10,000 agents sends about 2,000 snapshots a second; the evaluator takes
/// one in microseconds, so a full queue means it is stuck, not busy).
pub const ALERT_QUEUE: usize = 4096;
/// How often pending `--for` conditions, quiet alerts and rule changes are
/// looked at: the finest `--for` that fires on time.
pub const ALERT_TICK: Duration = Duration::from_secs(1);
/// Enrolled agents not connected when the hub starts count as offline from
/// this long after the start: the agents' reconnect backoff tops out at
/// `BACKOFF_MAX` (60 s), so a restarted hub does not fire `agent_offline`
/// for a fleet that is on its way back.
pub const ALERT_START_GRACE: Duration = nextdeploy_shared::limits::BACKOFF_MAX;
/// Longest `--for` of a rule.
pub const ALERT_MAX_FOR: Duration = Duration::from_secs(7 * 86_400);
/// Notifications taken from the outbox (and sent at once) per round.
pub const DELIVERY_BATCH: u32 = 16;
/// How often the outbox is looked at when nothing wakes the sender
/// (retries come due on their own).
pub const DELIVERY_POLL: Duration = Duration::from_secs(1);
/// One delivery attempt (connect, TLS, request, answer) gives up after this.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; doubled per attempt up to [`DELIVERY_MAX_BACKOFF`].
pub const DELIVERY_FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts: a receiver back after an hour gets
/// its notifications within five minutes.
pub const DELIVERY_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A notification not delivered this long after it was queued is given up
/// (state `failed`, kept in the log).
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(24 * 3600);
/// Largest answer body read from a receiver (it is only logged).
pub const DELIVERY_ANSWER_MAX: usize = 4096;
/// Longest URL, token, key or SMTP setting of an alert channel: real ones
/// are under 200 characters; the bound keeps a typo'd file out of the store.
pub const ALERT_CHANNEL_FIELD_MAX: usize = 2048;
/// Most recipients of an email channel: a team's list, not a mailing list
/// (one message goes to all, in one SMTP conversation).
pub const ALERT_EMAIL_MAX_RECIPIENTS: usize = 50;
/// One SMTP conversation (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA),
/// and each command in it: longer than an HTTP POST's
/// [`DELIVERY_TIMEOUT`] because submission servers delay their greeting
/// and their answer to DATA while they scan.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence: a month of maintenance; longer is a rule to remove.
pub const ALERT_MAX_SILENCE: Duration = Duration::from_secs(30 * 86_400);
/// Shortest `repeat_s`: a reminder, not a flood.
pub const ALERT_MIN_REPEAT: Duration = Duration::from_secs(60);
/// Largest `restart_loop` count (the evaluator keeps 256 restart times per
/// container).
pub const ALERT_RESTART_MAX_COUNT: u32 = 100;
/// Containers a scope preview names (it counts them all).
pub const SCOPE_SAMPLE: usize = 10;
/// Alerts `alert_history` answers by default, and at most.
pub const ALERT_HISTORY_DEFAULT_LIMIT: u32 = 100;
/// Most alerts one `alert_history` answers.
pub const ALERT_HISTORY_MAX_LIMIT: u32 = 1000;

/// Several hubs on one store (issue 23).
mod cluster;
pub use cluster::*;
