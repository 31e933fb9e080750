//! The bounds of a cluster of hubs (issue 23): heartbeats, leases, the
//! poll for other hubs' changes, the cluster secret.

use std::time::Duration;

/// Shortest cluster secret accepted (bytes, without surrounding whitespace):
/// room for 256 bits written as text; `head -c 32 /dev/urandom | base64`
/// makes a 44-character one.
pub const MIN_CLUSTER_SECRET_LEN: usize = 32;

/// How often a hub of a cluster writes its heartbeat and extends the
/// leases of the agents it holds (one transaction of two statements).
pub const CLUSTER_HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a lease lasts after its hub's last heartbeat: five heartbeats,
/// so a store busy for a second or two never moves an agent, while a dead
/// hub's agents show offline within 5 s (the "usual bound" is the
/// agent heartbeat timeout, 30 s by default).
pub const AGENT_LEASE: Duration = Duration::from_secs(5);

/// A hub whose heartbeat is older than this is dead to the others (its
/// leases count for nothing even before they expire): the lease's length.
pub const HUB_ALIVE_WITHIN: Duration = AGENT_LEASE;

/// A hub that could not write its heartbeat for this long has lost its
/// leases (they expired): it cuts its agents so that they reconnect to a
/// hub that reaches the store. One heartbeat short of the lease, so the
/// agents are cut before another hub may take them.
pub const CLUSTER_CUT_OFF_AFTER: Duration = Duration::from_secs(4);

/// Most lease claims written in one transaction (`cluster::claims`): a
/// reconnect storm's claims that waited while the previous batch was
/// written. A batch of this many is a few milliseconds of writing, so the
/// first claim of the next one waits no longer than that.
pub const CLAIM_BATCH: usize = 512;

/// How often a hub of a cluster polls the store for what other hubs
/// revoked or enrolled (a read of two `revoked_at` columns and a count):
/// a revocation on any hub takes effect on every hub within a second, as
/// the issue asks.
pub const CLUSTER_CHANGES_POLL: Duration = Duration::from_millis(250);

/// How far back each poll looks (revocation times are the revoking hub's
/// clock, in seconds): covers a few seconds of clock difference between
/// hubs and a poll delayed by a busy store; what was seen is remembered
/// for that long, so nothing is acted on twice.
pub const CLUSTER_CHANGES_LOOKBACK: Duration = Duration::from_secs(10);

/// A hub silent for this long is forgotten (its row and leases removed by
/// the next heartbeat of another): `hub cluster status` shows a dead hub for
/// a day, long enough to notice, and the table does not grow with every
/// restart (each start is a new hub id).
pub const HUB_FORGOTTEN_AFTER: Duration = Duration::from_secs(86_400);

/// How far a forwarding hub's clock may be from the receiving hub's when it
/// signs a request ([`crate::cluster::peer_auth`]): a signature older or
/// newer than this is refused, so a captured one is soon worthless.
pub const PEER_AUTH_SKEW: Duration = Duration::from_secs(30);

/// How long a hub waits for another hub's API to accept a forwarded request
/// (TCP, TLS and the WebSocket upgrade) before it tells the client.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One-shot requests waiting on one hub-to-hub link at once; more wait for
/// room (the link's queue is bounded, as every other).
pub const PEER_LINK_QUEUE: usize = 1024;

/// How long the store keeps a dashboard session after it ended or expired
/// (the other hubs' poll looks back seconds): the next sign-in forgets older
/// ones, so the table holds the sign-ins of the sessions' lifetime plus an hour.
pub const SESSIONS_KEPT_ENDED: Duration = Duration::from_secs(3600);

/// How long data sent to a PostgreSQL store may go unacknowledged before the
/// connection counts as dead (`TCP_USER_TIMEOUT`): a store cut off from the
/// network mid-query is an error within this, and the connection is opened
/// again, rather than a wait on TCP's retransmissions (minutes) that would
/// hold every store call of the hub.
pub const PG_TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections a hub on PostgreSQL keeps for the reads an SSH or API
/// authentication waits for (keys, tokens, join tokens), beside its one
/// connection for writes: during a connect storm the key checks of
/// different agents run side by side instead of queueing behind each other
/// and behind the writes (the store's own time per read is a fraction of a
/// millisecond; the queue was the cost). Three hubs use 3 x 7 connections
/// with the writer, history and listener ones.
pub const PG_READ_CONNECTIONS: usize = 3;
