//! Lease claims written in batches. When a hub of the cluster dies, its
//! agents come to the others all at once, and each one's lease was a store
//! transaction of its own: serialized on the hub's store connection and, on
//! a shared SQLite file, on its write lock that the other hubs want too.
//! Here one task writes them: the claims that arrived while a batch was
//! being written go together in the next transaction (at most
//! [`CLAIM_BATCH`]), so a quiet hub still writes each claim at once.

use tokio::sync::{mpsc, oneshot};

use crate::limits::{CLAIM_BATCH, MAX_UNREGISTERED};
use crate::store::{self, SharedStore, StoreError, StoreResult};

/// One agent's claim: its name and lease end, and who waits for the write.
struct Claim {
    agent: String,
    until: i64,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The claims' queue (bounded by the sessions that wait on it: at most
/// [`MAX_UNREGISTERED`] are between authentication and registration); its
/// task ends when the queue is dropped.
#[derive(Debug)]
pub struct Claims {
    tx: mpsc::Sender<Claim>,
}

impl Claims {
    /// The queue, and its writer task on `store` for hub `hub_id` (on the
    /// current runtime).
    pub fn start(store: SharedStore, hub_id: String) -> Claims {
        let (tx, rx) = mpsc::channel(MAX_UNREGISTERED);
        tokio::spawn(write(store, hub_id, rx));
        Claims { tx }
    }

    /// Take `agent`'s lease until `until` (Unix ms): done when written.
    pub async fn claim(&self, agent: &str, until: i64) -> StoreResult<()> {
        let (done, written) = oneshot::channel();
        let claim = Claim {
            agent: agent.to_string(),
            until,
            done,
        };
        let gone = || StoreError::Task("the lease writer has stopped".into());
        self.tx.send(claim).await.map_err(|_| gone())?;
        written.await.map_err(|_| gone())?
    }
}

/// The writer: one transaction per batch of waiting claims.
async fn write(store: SharedStore, hub_id: String, mut rx: mpsc::Receiver<Claim>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, CLAIM_BATCH).await > 0 {
        let rows: Vec<(String, i64)> = batch.iter().map(|c| (c.agent.clone(), c.until)).collect();
        let hub = hub_id.clone();
        let r = store::blocking(&store, move |s| s.take_leases(&hub, &rows)).await;
        for c in batch.drain(..) {
            let each = match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Task(format!("cannot take the lease: {e}"))),
            };
            let _ = c.done.send(each);
        }
    }
}
