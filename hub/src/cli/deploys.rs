//! `nextdeploy agent deploy|rollback` and `nextdeploy deploys list|show`.

use clap::Subcommand;
use nextdeploy_shared::protocol::admin::ById;
use nextdeploy_shared::protocol::containers::ContainerRef;
use nextdeploy_shared::protocol::deploy::{
    DeployEntry, DeployOutcome, DeployRequest, DeploysList, FleetOutcome, Outcome, PullPolicy,
    RollbackVia,
};
use nextdeploy_shared::protocol::{Action, ReplyType};
use nextdeploy_shared::secret::Secret;
use nextdeploy_shared::time::parse_duration;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::client::{error_of, Client};
use super::exit::DeployFailed;
use super::output::{self, Output};
use super::progress::{progress_line, Progress};

/// `nextdeploy deploys ...`
#[derive(Debug, Subcommand)]
pub enum DeploysCmd {
    /// Deploy history, newest first.
    List {
        /// Only this agent.
        #[arg(long)]
        server: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One deploy: steps, timings, outcome, who.
    Show {
        /// Deploy id.
        id: String,
        /// Attach to a running deploy: print its steps as they come, until it ends.
        #[arg(long)]
        follow: bool,
    },
}

/// Arguments of `agent deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Agent name.
    #[arg(
        long,
        conflicts_with = "selector",
        required_unless_present = "selector"
    )]
    pub server: Option<String>,
    /// Every agent matching this label selector, in batches of --max-parallel.
    #[arg(long)]
    pub selector: Option<String>,
    /// The new image, e.g. myapp:2.1.
    #[arg(long)]
    pub image: String,
    /// The container to update (default: every container of the image's repository).
    #[arg(long)]
    pub container: Option<String>,
    /// When to pull the image: always, missing (only if absent) or never.
    #[arg(long, default_value = "missing", value_name = "always|missing|never")]
    pub pull: PullPolicy,
    /// How long the new container may take to become healthy.
    #[arg(long, default_value = "300s")]
    pub health_timeout: String,
    /// Keep the old container (stopped) as the rollback point.
    #[arg(long)]
    pub keep_previous: bool,
    /// Servers deployed at once in a fleet deploy (1 to 100).
    #[arg(long, default_value_t = 1)]
    pub max_parallel: u32,
    /// Fleet deploys: go ahead without the offline servers (default: refuse
    /// the whole deploy, before any change, when one is offline).
    #[arg(long)]
    pub skip_offline: bool,
    /// Fleet deploys: servers matching this selector go first; the rest only
    /// if they all succeeded.
    #[arg(long, requires = "selector")]
    pub canary: Option<String>,
    /// With --canary: how long each canary must stay healthy before the rest go.
    #[arg(long, requires = "canary")]
    pub canary_wait: Option<String>,
}

/// A hub answer as its type.
fn typed<T: DeserializeOwned>(v: Value) -> anyhow::Result<T> {
    serde_json::from_value(v).map_err(|e| anyhow::anyhow!("unexpected answer from the hub: {e}"))
}

fn summarize(doc: &DeployOutcome) -> (bool, String) {
    let outcome = doc.outcome.as_str();
    let mut text = format!(
        "deploy {} on {}: {outcome}",
        doc.deploy_id,
        doc.server.as_deref().unwrap_or("-")
    );
    for c in &doc.containers {
        text.push_str(&format!(
            "\n  {}: {} -> {}: {}",
            c.container,
            c.from_image,
            c.to_image,
            c.outcome.as_str()
        ));
        if let Some(step) = &c.failed_step {
            let error = output::printable(c.error.as_deref().unwrap_or("-"));
            text.push_str(&format!(" (step {step}: {error})"));
        }
        if let Some(logs) = c.logs_tail.as_deref().filter(|l| !l.is_empty()) {
            text.push_str("\n  last log lines of the new container:");
            for l in logs.lines() {
                text.push_str(&format!("\n    {}", output::printable(l)));
            }
        }
    }
    if let Some(e) = &doc.error {
        text.push_str(&format!("\n  {}", output::printable(e)));
    }
    (doc.outcome == Outcome::Succeeded, text)
}

/// `agent deploy`.
pub async fn deploy(c: &mut Client, a: DeployArgs, out: Output) -> anyhow::Result<()> {
    let timeout = parse_duration(&a.health_timeout).map_err(anyhow::Error::msg)?;
    let canary_wait = match &a.canary_wait {
        Some(w) => Some(parse_duration(w).map_err(anyhow::Error::msg)?.as_secs()),
        None => None,
    };
    let mut payload = DeployRequest::new(a.image);
    payload.container = a.container;
    payload.pull = Some(a.pull);
    payload.health_timeout_s = Some(timeout.as_secs());
    payload.keep_previous = a.keep_previous;
    payload.max_parallel = Some(u64::from(a.max_parallel));
    payload.skip_offline = a.skip_offline;
    payload.canary = a.canary;
    payload.canary_wait_s = canary_wait;
    let id = c
        .send(
            Action::Deploy(payload),
            a.server.as_deref(),
            a.selector.as_deref(),
        )
        .await?;
    let doc = Progress::new(out).watch(c, id, out).await?;
    if out == Output::Json {
        println!("{doc}");
    }
    if a.selector.is_some() {
        return fleet_summary(&typed(doc)?, out);
    }
    let doc: DeployOutcome = typed(doc)?;
    let (ok, text) = summarize(&doc);
    if out == Output::Table {
        println!("{text}");
    }
    if !ok {
        // The summary above already says why (table); JSON readers get it here.
        let outcome = doc.outcome.as_str();
        return match out {
            Output::Table => Err(DeployFailed(format!("deploy {outcome}")).into()),
            Output::Json => Err(DeployFailed(format!(
                "deploy {outcome}: {}",
                doc.first_error().unwrap_or("see above")
            ))
            .into()),
        };
    }
    Ok(())
}

/// The end of a fleet deploy: each server's summary, then who was updated.
fn fleet_summary(doc: &FleetOutcome, out: Output) -> anyhow::Result<()> {
    let ok = doc.failed.is_empty();
    if out == Output::Table {
        for d in &doc.deploys {
            println!("{}", summarize(d).1);
        }
        println!(
            "updated: {}; failed: {}; not touched: {}; skipped (offline): {}",
            list(&doc.updated),
            list(&doc.failed),
            list(&doc.untouched),
            list(&doc.skipped)
        );
    }
    if !ok {
        return Err(DeployFailed("the fleet deploy stopped at a failed server".into()).into());
    }
    Ok(())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// `agent rollback`: run by the hub and the agent like a deploy (progress,
/// health wait, a record in `deploys list`).
pub async fn rollback(
    c: &mut Client,
    server: &str,
    container: &str,
    out: Output,
) -> anyhow::Result<()> {
    let action = Action::Rollback(ContainerRef {
        container: container.to_string(),
    });
    let id = c.send(action, Some(server), None).await?;
    let v = Progress::new(out).watch(c, id, out).await?;
    // JSON: one document per line, the outcome last, as `agent deploy`.
    if out == Output::Json {
        println!("{v}");
    }
    let doc: DeployOutcome = typed(v)?;
    let ok = doc.outcome == Outcome::Succeeded;
    match (out, doc.containers.first()) {
        (Output::Table, Some(res)) if ok => {
            let how = match res.rollback_via {
                Some(RollbackVia::KeptContainer) => {
                    "the kept container swapped back in".to_string()
                }
                _ => format!(
                    "redeployed the version deploy {} replaced",
                    res.undid_deploy.as_deref().unwrap_or("-")
                ),
            };
            println!(
                "{}: rolled back from {} to {} (deploy {}); {how}",
                res.container, res.from_image, res.to_image, doc.deploy_id
            )
        }
        (Output::Table, _) => println!("{}", summarize(&doc).1),
        (Output::Json, _) => {}
    }
    if !ok {
        let outcome = doc.outcome.as_str();
        return match out {
            Output::Table => Err(DeployFailed(format!("rollback {outcome}")).into()),
            Output::Json => Err(DeployFailed(format!(
                "rollback {outcome}: {}",
                doc.first_error().unwrap_or("-")
            ))
            .into()),
        };
    }
    Ok(())
}

/// `deploys list|show`.
pub async fn deploys(
    cmd: DeploysCmd,
    hub: &str,
    token: &Secret<String>,
    out: Output,
) -> anyhow::Result<()> {
    let mut c = Client::connect(hub, token).await?;
    let r = match cmd {
        DeploysCmd::List { server, limit } => {
            list_deploys(&mut c, server.as_deref(), limit, out).await
        }
        DeploysCmd::Show { id, follow: false } => show_deploy(&mut c, &id, out).await,
        DeploysCmd::Show { id, follow: true } => follow_deploy(&mut c, &id, out).await,
    };
    c.close().await;
    r
}

/// `deploys list`: newest first, as a table or JSON.
async fn list_deploys(
    c: &mut Client,
    server: Option<&str>,
    limit: u32,
    out: Output,
) -> anyhow::Result<()> {
    let req = DeploysList {
        limit: Some(u64::from(limit)),
    };
    let id = c.send(Action::DeploysList(req), server, None).await?;
    let v = loop {
        let r = c.next().await?;
        if r.id == Some(id) {
            match r.kind {
                ReplyType::Result => break r.data,
                ReplyType::Error => return Err(error_of(&r)),
                _ => {}
            }
        }
    };
    if out == Output::Json {
        return output::json(&v);
    }
    let entries: Vec<DeployEntry> = typed(v)?;
    let rows: Vec<Vec<String>> = entries
        .into_iter()
        .map(|d| {
            vec![
                d.id,
                d.created_at,
                d.server,
                d.container.unwrap_or_else(|| "(by repository)".into()),
                d.image,
                d.status,
                d.actor,
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "STARTED",
            "SERVER",
            "CONTAINER",
            "IMAGE",
            "STATUS",
            "BY",
        ],
        &rows,
    );
    Ok(())
}

/// The outcome of a finished record, with the record's id and server.
fn outcome_of(v: &DeployEntry) -> Option<DeployOutcome> {
    let mut doc = v.outcome.clone()?;
    doc.server = Some(v.server.clone());
    doc.deploy_id = v.id.clone();
    Some(doc)
}

/// `deploys show`: the deploy's fields, its timed steps and the summary line.
async fn show_deploy(c: &mut Client, id: &str, out: Output) -> anyhow::Result<()> {
    let v = c
        .call(Action::DeploysShow(ById { id: id.to_string() }), None)
        .await?;
    if out == Output::Json {
        return output::json(&v);
    }
    let v: DeployEntry = typed(v)?;
    output::pairs(&[
        ("id", v.id.clone()),
        ("by", v.actor.clone()),
        ("server", v.server.clone()),
        ("image", v.image.clone()),
        ("status", v.status.clone()),
        ("started", v.created_at.clone()),
        (
            "finished",
            v.finished_at.clone().unwrap_or_else(|| "-".into()),
        ),
    ]);
    if let Some(doc) = outcome_of(&v) {
        print_steps(&doc);
        println!("{}", summarize(&doc).1);
    }
    Ok(())
}

/// `deploys show ID --follow`: the steps so far, then each new one as the
/// hub relays it, until the deploy is finished; then the summary.
async fn follow_deploy(c: &mut Client, id: &str, out: Output) -> anyhow::Result<()> {
    // Steps by what they say: the live list (with the hub's `accepted`) and
    // the recorded one (the agent's) overlap.
    let mut printed = std::collections::HashSet::new();
    let mut t0: Option<i64> = None;
    loop {
        let raw = c
            .call(Action::DeploysShow(ById { id: id.to_string() }), None)
            .await?;
        let v: DeployEntry = typed(raw.clone())?;
        let done = v.finished_at.is_some();
        let steps = match (done, &v.outcome, &v.progress) {
            (true, Some(o), _) => o.steps.clone(),
            (false, _, Some(p)) => p.clone(),
            _ => Vec::new(),
        };
        for st in &steps {
            let key = format!("{} {} {} {}", st.container, st.step, st.status, st.at_ms);
            if !printed.insert(key) {
                continue;
            }
            let t0 = *t0.get_or_insert(st.at_ms);
            match out {
                Output::Json => println!("{}", serde_json::to_value(st)?),
                Output::Table => println!(
                    "{}",
                    progress_line((st.at_ms - t0) as f64 / 1000.0, &v.server, st)
                ),
            }
        }
        if done {
            match (out, outcome_of(&v)) {
                (Output::Json, _) => println!("{raw}"),
                (Output::Table, Some(doc)) => println!("{}", summarize(&doc).1),
                (Output::Table, None) => println!("deploy {}: {}", v.id, v.status),
            }
            return Ok(());
        }
        tokio::time::sleep(crate::limits::DEPLOY_FOLLOW_POLL).await;
    }
}

/// One line per recorded step, timed from the first step.
fn print_steps(doc: &DeployOutcome) {
    let t0 = doc.steps.first().map(|x| x.at_ms).unwrap_or(0);
    for st in &doc.steps {
        println!(
            "  +{:>7.3}s {} {} {}{}",
            (st.at_ms - t0) as f64 / 1000.0,
            st.container,
            st.step,
            st.status,
            st.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
}
