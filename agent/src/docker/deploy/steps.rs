//! The steps of one container's deploy, each a small function over the
//! engine: pull, prepare, swap, wait for health, finish or roll back.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use bollard::models::{ContainerInspectResponse, HealthStatusEnum, NetworkConnectRequest};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, LogsOptions,
    RemoveContainerOptions, RenameContainerOptions, StartContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use nextdeploy_shared::protocol::ErrorCode;

use super::spec;
use crate::docker::{classify, DockerError, Engine};
use crate::limits::{FAILURE_LOG_MAX_BYTES, FAILURE_LOG_WAIT, HEALTH_POLL};

/// `repo:tag` split as Docker does (a registry port is not a tag).
pub fn split_image(image: &str) -> (String, String) {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        return (name.to_string(), format!("@{d}"));
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (name.to_string(), "latest".to_string()),
    }
}

/// The repository of an image reference, for matching `myapp:1.0` to `myapp:latest`.
pub fn repository(image: &str) -> String {
    let repo = split_image(image).0;
    repo.strip_prefix("docker.io/library/")
        .or_else(|| repo.strip_prefix("library/"))
        .unwrap_or(&repo)
        .to_string()
}

/// Credentials for `image`'s registry from the agent's Docker config
/// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), if any.
pub fn credentials(image: &str) -> Option<DockerCredentials> {
    let repo = split_image(image).0;
    let first = repo.split('/').next().unwrap_or("");
    let registry = if repo.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        first.to_string()
    } else {
        "https://index.docker.io/v1/".to_string()
    };
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker"))
        })?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let entry = auths
        .iter()
        .find(|(k, _)| {
            k.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                == registry
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
        })?
        .1;
    let auth = entry.get("auth")?.as_str()?;
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?,
    )
    .ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some(DockerCredentials {
        username: Some(user.into()),
        password: Some(pass.into()),
        serveraddress: Some(registry),
        ..Default::default()
    })
}

/// Pull progress callback: (layer id, status, current bytes, total bytes).
pub type OnPull<'a> = &'a mut (dyn FnMut(&str, &str, i64, i64) + Send);

/// Pull `image` per `policy` (`always`, `missing`, `never`). Returns whether a pull happened.
pub async fn pull(
    engine: &Engine,
    image: &str,
    policy: &str,
    on: OnPull<'_>,
) -> Result<bool, DockerError> {
    let docker = engine.docker().await?;
    let present = docker.inspect_image(image).await.is_ok();
    match policy {
        "never" if !present => {
            return Err(DockerError::new(
                ErrorCode::DockerError,
                format!(
                "image {image} is not present on this server and --pull never forbids pulling it"
            ),
            ))
        }
        "never" => return Ok(false),
        "missing" if present => return Ok(false),
        "missing" | "always" => {}
        other => {
            return Err(DockerError::new(
                ErrorCode::BadRequest,
                format!("pull policy {other:?}: use always, missing or never"),
            ))
        }
    }
    let (repo, tag) = split_image(image);
    let opts = if let Some(digest) = tag.strip_prefix('@') {
        CreateImageOptions {
            from_image: Some(format!("{repo}@{digest}")),
            ..Default::default()
        }
    } else {
        CreateImageOptions {
            from_image: Some(repo),
            tag: Some(tag),
            ..Default::default()
        }
    };
    let mut stream = docker.create_image(Some(opts), None, credentials(image));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(err) = info.error_detail.and_then(|e| e.message) {
                    return Err(DockerError::new(
                        ErrorCode::DockerError,
                        format!("pulling {image}: {err}"),
                    ));
                }
                let (cur, total) = info
                    .progress_detail
                    .map(|p| (p.current.unwrap_or(0), p.total.unwrap_or(0)))
                    .unwrap_or((0, 0));
                on(
                    info.id.as_deref().unwrap_or(""),
                    info.status.as_deref().unwrap_or(""),
                    cur,
                    total,
                );
            }
            Err(e) => {
                let mut err = classify(&e);
                err.message = format!("pulling {image}: {}", err.message);
                if err.code == ErrorCode::NoSuchContainer {
                    err.code = ErrorCode::DockerError;
                }
                return Err(err);
            }
        }
    }
    Ok(true)
}

/// Inspect a container by id or name.
pub async fn inspect(engine: &Engine, id: &str) -> Result<ContainerInspectResponse, DockerError> {
    let id = id.to_string();
    engine
        .call(|d| async move {
            d.inspect_container(&id, None::<InspectContainerOptions>)
                .await
        })
        .await
}

/// Create the new container (named `name`) from the old one's spec; returns its id.
pub async fn create(
    engine: &Engine,
    old: &ContainerInspectResponse,
    image: &str,
    name: &str,
) -> Result<String, DockerError> {
    let old_image_id = old.image.clone().unwrap_or_default();
    let docker = engine.docker().await?;
    let old_image = docker
        .inspect_image(&old_image_id)
        .await
        .ok()
        .and_then(|i| i.config)
        .unwrap_or_default();
    let spec = spec::build(old, &old_image, image);
    let opts = CreateContainerOptions {
        name: Some(name.to_string()),
        platform: String::new(),
    };
    let created = engine
        .call(|d| async move { d.create_container(Some(opts), spec.body).await })
        .await?;
    for (net, endpoint) in spec.extra_networks {
        let req = NetworkConnectRequest {
            container: created.id.clone(),
            endpoint_config: Some(endpoint),
        };
        engine
            .call(|d| async move { d.connect_network(&net, req).await })
            .await?;
    }
    Ok(created.id)
}

/// Rename a container.
pub async fn rename(engine: &Engine, id: &str, name: &str) -> Result<(), DockerError> {
    let (id, name) = (id.to_string(), name.to_string());
    engine
        .call(|d| async move {
            d.rename_container(&id, RenameContainerOptions { name })
                .await
        })
        .await
}

/// Stop (already stopped is fine).
pub async fn stop(engine: &Engine, id: &str, timeout: Option<i32>) -> Result<(), DockerError> {
    let id = id.to_string();
    match engine
        .call(|d| async move {
            d.stop_container(
                &id,
                Some(StopContainerOptions {
                    t: timeout,
                    signal: None,
                }),
            )
            .await
        })
        .await
    {
        Err(e) if e.http_status == 304 => Ok(()),
        r => r,
    }
}

/// Start (already running is fine).
pub async fn start(engine: &Engine, id: &str) -> Result<(), DockerError> {
    let id = id.to_string();
    match engine
        .call(|d| async move { d.start_container(&id, None::<StartContainerOptions>).await })
        .await
    {
        Err(e) if e.http_status == 304 => Ok(()),
        r => r,
    }
}

/// Remove with force (its anonymous volumes stay: they may be carried over).
pub async fn remove(engine: &Engine, id: &str) -> Result<(), DockerError> {
    let id = id.to_string();
    engine
        .call(|d| async move {
            d.remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                }),
            )
            .await
        })
        .await
}

/// The last `n` log lines of a container (both streams), lossy text.
pub async fn last_logs(engine: &Engine, id: &str, n: usize) -> String {
    let Ok(docker) = engine.docker().await else {
        return String::new();
    };
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        tail: n.to_string(),
        ..Default::default()
    };
    let mut s = docker.logs(id, Some(opts));
    let mut out = Vec::new();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(FAILURE_LOG_WAIT, s.next()).await {
        out.extend_from_slice(&chunk.into_bytes());
        if out.len() > FAILURE_LOG_MAX_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Wait until the container is healthy: its healthcheck passes, or without
/// one, it keeps running without a restart for `settle`.
pub async fn wait_healthy(
    engine: &Engine,
    id: &str,
    timeout: Duration,
    settle: Duration,
) -> Result<(), DockerError> {
    let started = Instant::now();
    let first = inspect(engine, id).await?;
    let started_at = first.state.as_ref().and_then(|s| s.started_at.clone());
    let has_check = first
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .is_some_and(|t| !t.is_empty() && t[0] != "NONE");
    loop {
        let c = inspect(engine, id).await?;
        let st = c.state.clone().unwrap_or_default();
        let running = st.running == Some(true) && st.restarting != Some(true);
        let restarted = c.restart_count.unwrap_or(0) > 0 || st.started_at != started_at;
        if !running || restarted {
            let what = if running {
                format!(
                    "the new container restarted ({} restart(s) since it started)",
                    c.restart_count.unwrap_or(0).max(1)
                )
            } else {
                format!(
                    "the new container exited with code {}",
                    st.exit_code.unwrap_or(0)
                )
            };
            return Err(DockerError::new(ErrorCode::DockerError, what));
        }
        if has_check {
            match st.health.and_then(|h| h.status) {
                Some(HealthStatusEnum::HEALTHY) => return Ok(()),
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Err(DockerError::new(
                        ErrorCode::DockerError,
                        "the new container's healthcheck reports unhealthy",
                    ))
                }
                _ => {}
            }
        } else if started.elapsed() >= settle {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(DockerError::new(
                ErrorCode::Timeout,
                format!("the new container did not become healthy within {}s (raise it with --health-timeout)", timeout.as_secs()),
            ));
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// After it became healthy: the container must stay up for `window` (still
/// running, no restart, not unhealthy), the canary's health window.
pub async fn watch(engine: &Engine, id: &str, window: Duration) -> Result<(), DockerError> {
    let started = Instant::now();
    let first = inspect(engine, id).await?;
    let started_at = first.state.as_ref().and_then(|s| s.started_at.clone());
    let restarts = first.restart_count.unwrap_or(0);
    loop {
        let c = inspect(engine, id).await?;
        let st = c.state.clone().unwrap_or_default();
        if st.running != Some(true) || st.restarting == Some(true) {
            return Err(DockerError::new(
                ErrorCode::DockerError,
                format!(
                    "the new container stopped during its health window (exit code {})",
                    st.exit_code.unwrap_or(0)
                ),
            ));
        }
        if c.restart_count.unwrap_or(0) > restarts || st.started_at != started_at {
            return Err(DockerError::new(
                ErrorCode::DockerError,
                "the new container restarted during its health window",
            ));
        }
        if st.health.and_then(|h| h.status) == Some(HealthStatusEnum::UNHEALTHY) {
            return Err(DockerError::new(
                ErrorCode::DockerError,
                "the new container became unhealthy during its health window",
            ));
        }
        if started.elapsed() >= window {
            return Ok(());
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// Labels a deploy puts on what it keeps, to find the rollback point.
pub fn previous_name(name: &str) -> String {
    format!("{name}-nd-previous")
}

/// Containers whose image repository matches `image`'s: (id, name, image).
pub fn filter_matching(
    list: &[(String, String, String)],
    image: &str,
) -> Vec<(String, String, String)> {
    let want = repository(image);
    list.iter()
        .filter(|(_, name, img)| {
            repository(img) == want
                && !name.ends_with("-nd-previous")
                && !name.contains("-nd-old-")
                && !name.contains("-nd-new-")
                && !name.contains("-nd-rb-")
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        assert_eq!(split_image("myapp:1.0"), ("myapp".into(), "1.0".into()));
        assert_eq!(split_image("myapp"), ("myapp".into(), "latest".into()));
        assert_eq!(
            split_image("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app".into(), "latest".into())
        );
        assert_eq!(
            split_image("127.0.0.1:5000/app:v2"),
            ("127.0.0.1:5000/app".into(), "v2".into())
        );
        assert_eq!(repository("docker.io/library/nginx:1"), "nginx");
        assert_eq!(repository("myapp:1.0"), repository("myapp:latest"));
    }

    #[test]
    fn repository_match() {
        let list = vec![
            ("1".into(), "web".into(), "myapp:1.0".into()),
            ("2".into(), "db".into(), "postgres:16".into()),
            ("3".into(), "web-nd-previous".into(), "myapp:0.9".into()),
        ];
        let m = filter_matching(&list, "myapp:latest");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1, "web");
    }
}
