//! Deploy outcomes into the evaluator (`deploy_failed`): the deploy code
//! calls [`offer`] once it recorded an outcome.

use nextdeploy_shared::protocol::deploy::{ContainerOutcome, DeployOutcome, Outcome};

use crate::store;
use crate::Services;

/// Hand a recorded outcome of `server`'s deploy `id` to the alert evaluator
/// (`deploy_failed`). The store is read only for an outcome with no
/// container (refused before any), to name the record's container; the
/// evaluator's queue is offered with `try_send`, so a busy evaluator never
/// holds up a deploy.
pub async fn offer(svc: &Services, id: &str, server: &str, doc: &DeployOutcome) {
    if matches!(doc.outcome, Outcome::Unknown | Outcome::Untouched) {
        return;
    }
    let mut doc = doc.clone();
    doc.deploy_id = id.to_string();
    if doc.containers.is_empty() {
        let i = id.to_string();
        if let Ok(Some(c)) = store::blocking(&svc.store, move |s| s.deploy(&i))
            .await
            .map(|r| r.and_then(|r| r.container))
        {
            doc.containers.push(ContainerOutcome {
                container: c,
                outcome: doc.outcome,
                error: doc.error.clone(),
                ..Default::default()
            });
        }
    }
    let labels = match svc.registry.get(server) {
        Some(conn) => conn.labels.clone(),
        None => store::blocking(&svc.store, |s| s.agent_labels())
            .await
            .ok()
            .and_then(|all| all.iter().find(|(n, _)| n == server).map(|x| x.1.clone()))
            .unwrap_or_default(),
    };
    svc.alerts.offer_deploy(server, &labels, &doc);
}
