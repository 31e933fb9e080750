//! The contract both sides of NextDeploy link: the hub (`nextdeploy`) and the
//! agent (`nextdeploy-agent`).
//!
//! Layout:
//! - [`malloc`]: glibc allocator settings for the binaries' hot paths.
//! - [`limits`]: every bound of the protocol, as documented constants.
//! - [`protocol`]: the message types: WebSocket requests and replies (the seed's
//!   `{"id","action","server","payload"}` / `{"id","type","data"}` vocabulary) and
//!   the frames that travel hub -> agent on an SSH channel.
//! - [`docker`]: container rows, stats samples, health snapshots, events.
//! - [`frame`]: length-prefixed framing with a size cap checked before allocation.
//! - [`cipher`]: the agent's cipher preference (AES-GCM with hardware AES, else ChaCha20).
//! - [`json`]: JSON text for the bulk of a stream, escaped without serde.
//! - [`keys`]: ed25519 keys in OpenSSH format and `SHA256:` fingerprints.
//! - [`token`]: join and API tokens (`ndj_`, `nda_`): generation, parsing, hashing.
//! - [`secret`]: `Secret<T>`, whose `Debug` prints a mask.
//! - [`signals`]: graceful first signal, forced second one.
//! - [`labels`]: `k=v` labels and selectors.
//! - [`readahead`]: a stream wrapper that serves russh's small reads from one read.
//! - [`time`]: unix timestamps, RFC 3339 rendering and `1h`-style durations.
//! - [`tls`]: the API certificate pin and the client side of TLS (pin or system roots).
//! - `fuzzing` (hidden): the fuzz targets' bodies, shared with the corpus replay test.

pub mod cipher;
pub mod docker;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod keys;
pub mod labels;
pub mod limits;
pub mod malloc;
pub mod protocol;
pub mod readahead;
pub mod secret;
pub mod signals;
pub mod time;
pub mod tls;
pub mod token;

/// Version of this build, reported by agents in their hello and by the hub on /health.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
