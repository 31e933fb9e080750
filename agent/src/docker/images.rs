//! Images on the agent's engine (`images`, `pull` with progress) and removing
//! a container (`rm`), as the docker CLI does them.

use bollard::query_parameters::{ListImagesOptions, RemoveContainerOptions};
use nextdeploy_shared::protocol::containers::{
    ImageRow, ImagesRequest, PullProgress, PullRequest, Pulled, RemoveRequest, Removed,
};
use nextdeploy_shared::protocol::{ErrorCode, Reply, ReplyType};
use tokio::sync::mpsc;

use super::containers::resolve;
use super::deploy::steps;
use super::{DockerError, Engine};

/// `images`: every image, newest first, as `docker images` lists them.
pub async fn list_images(engine: &Engine, p: &ImagesRequest) -> Result<Vec<ImageRow>, DockerError> {
    let opts = ListImagesOptions {
        all: p.all,
        ..Default::default()
    };
    let list = engine
        .call(|d| async move { d.list_images(Some(opts)).await })
        .await?;
    let mut rows: Vec<ImageRow> = list
        .into_iter()
        .map(|i| ImageRow {
            id: i.id,
            repo_tags: i.repo_tags,
            created_s: i.created,
            size: i.size,
            containers: i.containers,
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_s));
    Ok(rows)
}

/// `rm`: remove a visible container; a running one only with `force`.
pub async fn remove_container(engine: &Engine, p: &RemoveRequest) -> Result<Removed, DockerError> {
    let t = resolve(engine, &p.container).await?;
    let opts = RemoveContainerOptions {
        force: p.force,
        v: p.volumes,
        link: false,
    };
    let id = t.id.clone();
    engine
        .call(|d| async move { d.remove_container(&id, Some(opts)).await })
        .await?;
    Ok(Removed {
        id: t.id,
        name: t.name,
        removed: true,
    })
}

/// `pull`: pull `image` whatever is present, a `progress` reply per engine
/// message (dropped, never queued without bound, when the hub reads slower
/// than the engine reports), then the image's id as the `result`.
pub async fn pull_image(
    engine: &Engine,
    id: Option<u64>,
    p: &PullRequest,
    out: &mpsc::Sender<Reply>,
) -> Result<(), DockerError> {
    let image = p.image.trim();
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err(DockerError::new(
            ErrorCode::BadRequest,
            "payload.image (e.g. myapp:2.1) is required",
        ));
    }
    let mut on = |layer: &str, status: &str, current: i64, total: i64| {
        let progress = PullProgress {
            layer: layer.to_string(),
            status: status.to_string(),
            current,
            total,
        };
        let data = serde_json::to_value(progress).unwrap_or_default();
        let _ = out.try_send(Reply::new(id, ReplyType::Progress, data));
    };
    steps::pull(engine, image, "always", &mut on).await?;
    let docker = engine.docker().await?;
    let pulled = docker
        .inspect_image(image)
        .await
        .map_err(|e| super::classify(&e))?;
    let done = Pulled {
        image: image.to_string(),
        id: pulled.id.unwrap_or_default(),
    };
    let data = serde_json::to_value(done).unwrap_or_default();
    let _ = out.send(Reply::result(id, data)).await;
    let _ = out.send(Reply::end(id)).await;
    Ok(())
}
