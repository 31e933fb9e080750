//! Deploys owned by the agent: once started, a deploy runs in its own task and
//! finishes (or rolls back) even if the hub or the CLI goes away. Every step is
//! written to a local journal (`<state dir>/deploys/<id>.json`); outcomes not
//! yet acknowledged by the hub are pushed again on every connection. A deploy
//! id seen twice is never applied twice, and one container has at most one
//! deploy at a time.
//!
//! Layout: this file (`Deployer`: journal, start or attach, `execute`),
//! `container.rs` (one container's deploy), `swap.rs` (overlap or
//! stop-then-start, putting the old one back), `rollback.rs`, `history.rs`
//! (the versions deploys replaced, for rollback), `recover.rs` (after a
//! restart), `steps.rs` (the Docker calls), `spec.rs` (the new container's
//! configuration).

mod container;
mod history;
mod recover;
mod rollback;
pub mod spec;
pub mod steps;
mod swap;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nextdeploy_shared::protocol::deploy::{
    ContainerOutcome, DeployKind, DeployOutcome, DeployProgress, Outcome,
};
use nextdeploy_shared::protocol::{self, ErrorCode, PushedOutcome, Reply, ReplyType};
use nextdeploy_shared::time::now_unix_ms;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

use super::{DockerError, Engine};
use crate::limits::{DEFAULT_HEALTH_TIMEOUT_S, MAX_DEPLOY_ID_LEN, PROGRESS_BACKLOG};
use crate::util::lock;

/// What a deploy was asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployRequest {
    /// Chosen by the hub.
    pub deploy_id: String,
    /// The new image.
    pub image: String,
    /// One container, or every container of the image's repository.
    #[serde(default)]
    pub container: Option<String>,
    /// always / missing / never.
    #[serde(default = "default_pull")]
    pub pull: String,
    /// Seconds to wait for health.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_s: u64,
    /// Keep the old container (stopped) as the rollback point.
    #[serde(default)]
    pub keep_previous: bool,
    /// Seconds a container without healthcheck must stay up.
    #[serde(default)]
    pub settle_s: Option<u64>,
    /// A rollback to the container the last deploy kept, not a deploy.
    #[serde(default)]
    pub rollback: bool,
    /// Seconds the new container must stay healthy after it became so
    /// (a canary's health window).
    #[serde(default)]
    pub watch_s: Option<u64>,
}

impl DeployRequest {
    /// The hub's request as the journal keeps it, defaults filled in.
    fn from_wire(p: &protocol::deploy::DeployRequest) -> DeployRequest {
        DeployRequest {
            deploy_id: p.deploy_id.clone().unwrap_or_default(),
            image: p.image.clone(),
            container: p.container.clone(),
            pull: p.pull.unwrap_or_default().as_str().to_string(),
            health_timeout_s: p.health_timeout_s.unwrap_or_else(default_health_timeout),
            keep_previous: p.keep_previous,
            settle_s: p.settle_s,
            rollback: p.rollback,
            watch_s: p.canary_wait_s.filter(|s| *s > 0),
        }
    }
}

fn default_pull() -> String {
    "missing".into()
}
fn default_health_timeout() -> u64 {
    DEFAULT_HEALTH_TIMEOUT_S
}

/// The journal of one deploy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// The request.
    pub request: DeployRequest,
    /// Every progress event so far.
    pub steps: Vec<DeployProgress>,
    /// Set when finished.
    pub outcome: Option<DeployOutcome>,
    /// Whether the hub acknowledged the outcome.
    #[serde(default)]
    pub delivered: bool,
}

/// The rollback point the last deploy of a container kept: the kept
/// container is only swapped back in while both ids still match.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    /// The kept (stopped) container, `<name>-nd-previous`.
    kept_id: String,
    /// The container that replaced it and runs under the name.
    current_id: String,
    /// The deploy (or rollback) that kept it.
    deploy_id: String,
}

struct Running {
    progress: broadcast::Sender<Reply>,
    journal: Mutex<Journal>,
}

/// The agent's deploys.
pub struct Deployer {
    engine: Arc<Engine>,
    dir: PathBuf,
    push: broadcast::Sender<Reply>,
    running: Mutex<HashMap<String, Arc<Running>>>,
    busy: Mutex<HashMap<String, String>>,
}

fn err(code: ErrorCode, m: impl Into<String>) -> DockerError {
    DockerError::new(code, m)
}

/// A deploy id names its journal file: letters, digits and '-', at most
/// [`MAX_DEPLOY_ID_LEN`] of them, so it can never leave the journal folder.
fn check_deploy_id(id: &str) -> Result<(), DockerError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_DEPLOY_ID_LEN
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    match ok {
        true => Ok(()),
        false => Err(err(
            ErrorCode::BadRequest,
            format!("deploy_id must be 1 to {MAX_DEPLOY_ID_LEN} letters, digits and '-'"),
        )),
    }
}

impl Deployer {
    /// Deploys journalled under `dir`.
    pub fn new(engine: Arc<Engine>, dir: PathBuf, push: broadcast::Sender<Reply>) -> Arc<Self> {
        Arc::new(Deployer {
            engine,
            dir,
            push,
            running: Mutex::default(),
            busy: Mutex::default(),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn save(&self, j: &Journal) {
        let _ = std::fs::create_dir_all(&self.dir);
        match serde_json::to_vec_pretty(j) {
            Ok(bytes) => {
                if let Err(e) = nextdeploy_shared::keys::write_private_atomic(
                    &self.path(&j.request.deploy_id),
                    &bytes,
                ) {
                    warn!(error = %e, "cannot write the deploy journal");
                }
            }
            Err(e) => warn!(error = %e, "cannot encode the deploy journal"),
        }
    }

    fn kept_path(&self, name: &str) -> PathBuf {
        self.dir.join("kept").join(format!("{name}.json"))
    }

    /// The rollback point recorded for container `name`.
    fn kept(&self, name: &str) -> Option<Kept> {
        serde_json::from_slice(&std::fs::read(self.kept_path(name)).ok()?).ok()
    }

    /// Record (or with `None`, forget) the rollback point of `name`.
    fn set_kept(&self, name: &str, k: Option<&Kept>) {
        let path = self.kept_path(name);
        let Some(k) = k else {
            let _ = std::fs::remove_file(&path);
            return;
        };
        let _ = std::fs::create_dir_all(self.dir.join("kept"));
        match serde_json::to_vec(k) {
            Ok(bytes) => {
                if let Err(e) = nextdeploy_shared::keys::write_private_atomic(&path, &bytes) {
                    warn!(error = %e, "cannot record the rollback point");
                }
            }
            Err(e) => warn!(error = %e, "cannot encode the rollback point"),
        }
    }

    fn load(&self, id: &str) -> Option<Journal> {
        serde_json::from_slice(&std::fs::read(self.path(id)).ok()?).ok()
    }

    /// Outcomes the hub has not acknowledged, as control-channel replies.
    pub fn undelivered(&self) -> Vec<Reply> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| serde_json::from_slice::<Journal>(&std::fs::read(e.path()).ok()?).ok())
            .filter(|j| !j.delivered)
            .filter_map(|j| j.outcome.map(pushed))
            .collect()
    }

    /// The hub stored the outcome of `id`. An id that is not a deploy id (it
    /// names the journal file) is refused and nothing changes.
    pub fn acknowledged(&self, id: &str) -> Result<(), DockerError> {
        check_deploy_id(id)?;
        if let Some(mut j) = self.load(id) {
            j.delivered = true;
            self.save(&j);
        }
        Ok(())
    }

    /// Serve a `deploy` request: start it (or attach to it), stream progress to
    /// `out`, end with the outcome. The deploy survives `out` going away.
    pub async fn deploy(
        self: &Arc<Self>,
        id: Option<u64>,
        payload: &protocol::deploy::DeployRequest,
        out: &mpsc::Sender<Reply>,
    ) -> Result<(), DockerError> {
        let req = DeployRequest::from_wire(payload);
        check_deploy_id(&req.deploy_id)?;
        // Seen before: finished (answer its outcome) or running (attach).
        if let Some(j) = self.load(&req.deploy_id) {
            if let Some(outcome) = j.outcome {
                let _ = out.send(Reply::result(id, to_value(&outcome))).await;
                let _ = out.send(Reply::end(id)).await;
                return Ok(());
            }
        }
        let run = lock(&self.running).get(&req.deploy_id).cloned();
        let run = match run {
            Some(r) => r,
            None => self.start(req).await?,
        };
        let (mut rx, backlog) = {
            let j = lock(&run.journal);
            (run.progress.subscribe(), j.steps.clone())
        };
        for s in backlog {
            if out
                .send(Reply::new(id, ReplyType::Progress, to_value(&s)))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
        loop {
            match rx.recv().await {
                Ok(mut r) => {
                    r.id = id;
                    let last = r.kind == ReplyType::Result;
                    if out.send(r).await.is_err() {
                        return Ok(());
                    }
                    if last {
                        let _ = out.send(Reply::end(id)).await;
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    async fn start(self: &Arc<Self>, req: DeployRequest) -> Result<Arc<Running>, DockerError> {
        if req.rollback && req.container.is_none() {
            return Err(err(ErrorCode::BadRequest, "a rollback names its container"));
        }
        // Targets: one container, or every container of the image's repository.
        let list = super::containers::list_all(&self.engine, None).await?;
        let rows: Vec<(String, String, String)> = list
            .iter()
            .map(super::containers::to_row)
            .map(|r| (r.id, r.name, r.image))
            .collect();
        let targets: Vec<(String, String, String)> = match &req.container {
            Some(c) => {
                let t = super::containers::resolve(&self.engine, c).await?;
                rows.into_iter().filter(|r| r.0 == t.id).collect()
            }
            None => {
                let m = steps::filter_matching(&rows, &req.image);
                if m.is_empty() {
                    let names: Vec<String> =
                        rows.iter().map(|r| format!("{} ({})", r.1, r.2)).collect();
                    return Err(err(
                        ErrorCode::NoSuchContainer,
                        format!("no container runs an image of repository {}; containers: {}; name one with --container", steps::repository(&req.image), if names.is_empty() { "none".into() } else { names.join(", ") }),
                    ));
                }
                m
            }
        };
        {
            let mut busy = lock(&self.busy);
            if let Some((name, other)) = targets
                .iter()
                .find_map(|t| busy.get(&t.1).map(|o| (t.1.clone(), o.clone())))
            {
                return Err(err(
                    ErrorCode::Conflict,
                    format!("deploy {other} is already running for container {name}"),
                ));
            }
            for t in &targets {
                busy.insert(t.1.clone(), req.deploy_id.clone());
            }
        }
        let (tx, _) = broadcast::channel(PROGRESS_BACKLOG);
        let run = Arc::new(Running {
            progress: tx,
            journal: Mutex::new(Journal {
                request: req.clone(),
                steps: Vec::new(),
                outcome: None,
                delivered: false,
            }),
        });
        lock(&self.running).insert(req.deploy_id.clone(), run.clone());
        self.save(&lock(&run.journal).clone());
        let me = self.clone();
        let r = run.clone();
        tokio::spawn(async move { me.execute(r, targets).await });
        Ok(run)
    }

    fn record_event(&self, run: &Running, p: DeployProgress) {
        // Journal and broadcast under one lock, so a watcher that attaches
        // (backlog + subscription under the same lock) sees each event once.
        let mut j = lock(&run.journal);
        let v = to_value(&p);
        if p.step != "pull_progress" {
            j.steps.push(p);
            self.save(&j);
        }
        let _ = run
            .progress
            .send(Reply::new(Some(0), ReplyType::Progress, v));
        drop(j);
    }

    async fn execute(self: Arc<Self>, run: Arc<Running>, targets: Vec<(String, String, String)>) {
        let req = lock(&run.journal).request.clone();
        let started = now_unix_ms();
        info!(deploy = %req.deploy_id, image = %req.image, containers = targets.len(), "deploy started");
        let mut results: Vec<ContainerOutcome> = Vec::new();
        let mut overall = Outcome::Succeeded;
        for (id, name, from_image) in &targets {
            let r = if req.rollback {
                self.rollback_container(&run, &req, id, name, from_image)
                    .await
            } else {
                self.deploy_container(&run, &req, id, name, from_image)
                    .await
            };
            let failed = r.outcome != Outcome::Succeeded;
            let rolled_back = r.outcome == Outcome::RolledBack;
            results.push(r);
            if failed {
                overall = match rolled_back {
                    true => Outcome::RolledBack,
                    false => Outcome::Failed,
                };
                break;
            }
        }
        // A rollback's image is the one it went back to.
        let image = match req.rollback {
            true => results
                .first()
                .map(|r| r.to_image.clone())
                .unwrap_or_default(),
            false => req.image.clone(),
        };
        let outcome = DeployOutcome {
            deploy_id: req.deploy_id.clone(),
            kind: Some(match req.rollback {
                true => DeployKind::Rollback,
                false => DeployKind::Deploy,
            }),
            image: Some(image),
            outcome: overall,
            containers: results,
            started_ms: Some(started),
            finished_ms: Some(now_unix_ms()),
            steps: lock(&run.journal).steps.clone(),
            ..DeployOutcome::default()
        };
        {
            let mut j = lock(&run.journal);
            j.outcome = Some(outcome.clone());
            self.save(&j);
        }
        info!(deploy = %req.deploy_id, outcome = overall.as_str(), "deploy finished");
        {
            let mut busy = lock(&self.busy);
            for t in &targets {
                busy.remove(&t.1);
            }
        }
        lock(&self.running).remove(&req.deploy_id);
        let _ = run
            .progress
            .send(Reply::new(Some(0), ReplyType::Result, to_value(&outcome)));
        // Also to the hub's history, whether or not anyone is still watching.
        let _ = self.push.send(pushed(outcome));
    }
}

/// A typed document as JSON (these types always serialize).
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// An outcome as the agent pushes it on its control channel.
fn pushed(deploy_outcome: DeployOutcome) -> Reply {
    let data = to_value(&PushedOutcome { deploy_outcome });
    Reply::new(Some(0), ReplyType::Result, data)
}

#[cfg(test)]
mod tests;
