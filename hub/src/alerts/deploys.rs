//! Deploy outcomes into the evaluator (`deploy_failed`): the deploy code
//! calls [`offer`] once it recorded an outcome.

use nextdeploy_shared::protocol::deploy::{ContainerOutcome, DeployOutcome, Outcome};

use crate::store;
use crate::Services;

/// Hand a recorded outcome to the alert evaluator (`deploy_failed`): the
/// record says which server and container. One store read on the blocking
/// pool; the evaluator's queue is offered with `try_send`, so a busy
/// evaluator never holds up a deploy.
pub async fn offer(svc: &Services, id: &str, doc: &DeployOutcome) {
    if matches!(doc.outcome, Outcome::Unknown | Outcome::Untouched) {
        return;
    }
    let i = id.to_string();
    let Ok(Some(rec)) = store::blocking(&svc.store, move |s| s.deploy(&i)).await else {
        return;
    };
    let labels = match svc.registry.get(&rec.server) {
        Some(conn) => conn.labels.clone(),
        None => store::blocking(&svc.store, |s| s.agent_labels())
            .await
            .ok()
            .and_then(|all| {
                all.iter()
                    .find(|(n, _)| *n == rec.server)
                    .map(|x| x.1.clone())
            })
            .unwrap_or_default(),
    };
    let mut doc = doc.clone();
    doc.deploy_id = id.to_string();
    if doc.containers.is_empty() {
        if let Some(c) = rec.container.clone() {
            doc.containers.push(ContainerOutcome {
                container: c,
                outcome: doc.outcome,
                error: doc.error.clone(),
                ..Default::default()
            });
        }
    }
    svc.alerts.offer_deploy(&rec.server, &labels, &doc);
}
