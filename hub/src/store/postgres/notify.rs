//! Revocations across hubs: every [`super::PgStore`] listens on
//! [`super::REVOKED_CHANNEL`] on a connection of its own, in a thread, and
//! hands each id it hears to its [`crate::store::Store::revocations`]
//! receivers; a revocation made through any store on the database reaches
//! them all within the notification's round trip. When the listening
//! connection breaks, the thread connects again and announces the tokens
//! revoked in the meantime (read from `api_tokens`), so none is missed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fallible_iterator::FallibleIterator;
use postgres::Client;

use super::dial::Dial;
use tokio::sync::broadcast;

use super::REVOKED_CHANNEL;
use crate::store::StoreResult;

/// How often the thread looks whether its store is gone.
const POLL: Duration = Duration::from_millis(250);
/// How often an idle listening connection is checked (`SELECT 1`): a
/// connection the server closed yields no error while it only waits.
const CHECK: Duration = Duration::from_secs(1);
/// Pause before connecting again after the connection broke.
const RETRY: Duration = Duration::from_secs(1);
/// Revocations this many seconds before a reconnection are announced again
/// (clocks of hubs differ a little; announcing twice is harmless: the
/// connections of a revoked token are closed already).
const CATCH_UP_S: i64 = 60;

/// Start listening; the first connection is made before this returns.
pub(super) fn listen(
    config: Dial,
    shown: String,
    revoked: broadcast::Sender<String>,
    stop: Arc<AtomicBool>,
) -> StoreResult<()> {
    let client = connect(&config).map_err(|e| {
        crate::store::StoreError::Open(format!(
            "cannot listen on the store at {shown}: {}",
            super::db::chain(&e)
        ))
    })?;
    std::thread::Builder::new()
        .name("store-notify".into())
        .spawn(move || run(config, client, revoked, stop))
        .map_err(|e| crate::store::StoreError::Open(format!("listener thread: {e}")))?;
    Ok(())
}

fn connect(config: &Dial) -> Result<Client, postgres::Error> {
    let mut c = config.connect()?;
    c.batch_execute(&format!("LISTEN {REVOKED_CHANNEL}"))?;
    Ok(c)
}

fn run(
    config: Dial,
    mut client: Client,
    revoked: broadcast::Sender<String>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match pump(&mut client, &revoked, &stop) {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %super::db::chain(&e), "store listener lost its connection")
            }
        }
        let lost_at = nextdeploy_shared::time::now_unix();
        client = loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(RETRY);
            match connect(&config) {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %super::db::chain(&e), "store listener cannot connect")
                }
            }
        };
        if let Err(e) = catch_up(&mut client, &revoked, lost_at - CATCH_UP_S) {
            tracing::warn!(error = %e, "store listener could not read recent revocations");
        }
    }
}

/// Hand on notifications until the store is dropped (`Ok`) or the
/// connection breaks.
fn pump(
    client: &mut Client,
    revoked: &broadcast::Sender<String>,
    stop: &AtomicBool,
) -> Result<(), postgres::Error> {
    let mut last_check = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        {
            let mut n = client.notifications();
            let mut it = n.timeout_iter(POLL);
            while let Some(note) = it.next()? {
                if note.channel() == REVOKED_CHANNEL {
                    // No subscriber (no open connection) is not an error.
                    let _ = revoked.send(note.payload().to_string());
                }
            }
        }
        if last_check.elapsed() >= CHECK {
            client.batch_execute("SELECT 1")?;
            last_check = std::time::Instant::now();
        }
    }
    Ok(())
}

fn catch_up(
    client: &mut Client,
    revoked: &broadcast::Sender<String>,
    since: i64,
) -> Result<(), postgres::Error> {
    for row in client.query(
        "SELECT id FROM api_tokens WHERE revoked_at >= $1",
        &[&since],
    )? {
        let _ = revoked.send(row.try_get(0)?);
    }
    Ok(())
}
