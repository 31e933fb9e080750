//! `nextdeploy agent images` and `agent pull`: the agent's images as docker
//! lists them, and a pull ahead of a deploy with the engine's progress.

use nextdeploy_shared::protocol::containers::{ImageRow, ImagesRequest, PullProgress, PullRequest};
use nextdeploy_shared::protocol::{Action, Reply, ReplyType};
use nextdeploy_shared::time::{human_age, now_unix};
use serde_json::Value;

use super::client::Client;
use super::output::{self, Output};

/// `images`: as `docker images` (REPOSITORY, TAG, IMAGE ID, CREATED, SIZE).
pub async fn images(
    c: &mut Client,
    server: &str,
    all: bool,
    quiet: bool,
    out: Output,
) -> anyhow::Result<()> {
    let v = c
        .call(Action::Images(ImagesRequest { all }), Some(server))
        .await?;
    if out == Output::Json {
        return output::json(&v);
    }
    let rows: Vec<ImageRow> = serde_json::from_value(v)?;
    let short = |id: &str| {
        id.trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>()
    };
    if quiet {
        for r in &rows {
            println!("{}", short(&r.id));
        }
        return Ok(());
    }
    let now = now_unix();
    let mut cells = Vec::new();
    for r in &rows {
        let names = if r.repo_tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            r.repo_tags.clone()
        };
        for name in names {
            let (repo, tag) = name.rsplit_once(':').unwrap_or((name.as_str(), "<none>"));
            cells.push(vec![
                repo.to_string(),
                tag.to_string(),
                short(&r.id),
                format!("{} ago", human_age(now - r.created_s)),
                human_bytes(r.size),
            ]);
        }
    }
    output::table(
        &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        &cells,
    );
    Ok(())
}

/// Bytes as docker prints sizes (decimal units).
fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    match n {
        n if n >= 1e9 => format!("{:.2}GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1}MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1}kB", n / 1e3),
        n => format!("{n}B"),
    }
}

/// `pull`: the engine's progress, one line per layer status change, then the id.
pub async fn pull(c: &mut Client, server: &str, image: String, out: Output) -> anyhow::Result<()> {
    let mut last: std::collections::HashMap<String, String> = Default::default();
    let mut pulled = Value::Null;
    c.stream(
        Action::Pull(PullRequest { image }),
        Some(server),
        None,
        |r: &Reply| {
            match r.kind {
                ReplyType::Progress if out == Output::Table => {
                    let p: PullProgress =
                        serde_json::from_value(r.data.clone()).unwrap_or_default();
                    // One line per status change of a layer, not one per byte count.
                    if last.get(&p.layer) != Some(&p.status) {
                        let who = if p.layer.is_empty() {
                            String::new()
                        } else {
                            format!("{}: ", p.layer)
                        };
                        println!("{}", output::printable(&format!("{who}{}", p.status)));
                        last.insert(p.layer.clone(), p.status);
                    }
                }
                ReplyType::Result => pulled = r.data.clone(),
                _ => {}
            }
            Ok(())
        },
    )
    .await?;
    match out {
        Output::Json => output::json(&pulled),
        Output::Table => {
            println!(
                "pulled {} ({})",
                pulled["image"].as_str().unwrap_or("?"),
                pulled["id"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}
