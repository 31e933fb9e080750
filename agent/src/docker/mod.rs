//! The local Docker Engine through bollard, one file per resource:
//! [`containers`] (ps, inspect, lifecycle), [`logs`], [`exec`], [`stats`], [`events`],
//! [`monitor`] (the periodic health snapshot, its figures read by [`kernel`]), [`deploy`] (health-gated
//! deploys with rollback, owned by the agent).
//!
//! [`Engine`] holds the client, negotiated with the engine's API version on
//! first use (old engines refuse a client that asks for a newer API) and
//! re-negotiated after the engine was unreachable, so the agent recovers by
//! itself when dockerd comes back. DOCKER_HOST is honoured by bollard.
//! The optional scope (a label selector) hides containers from every action.

pub mod containers;
pub mod deploy;
pub mod events;
pub mod exec;
pub mod files;
pub mod images;
pub mod kernel;
pub mod logs;
pub mod monitor;
pub mod stats;

use std::collections::HashMap;
use std::sync::Mutex;

use bollard::errors::Error as BollardError;
use bollard::Docker;
use nextdeploy_shared::labels::{Labels, Selector};
use nextdeploy_shared::protocol::{DockerStatus, ErrorCode};

use crate::limits::PROBE_TIMEOUT;
use crate::util::lock;

/// A failed Docker operation, with the wire code the client sees.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DockerError {
    /// Wire code.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// The engine's HTTP status, when it answered (0 otherwise).
    pub http_status: u16,
}

impl DockerError {
    /// An error of `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        DockerError {
            code,
            message: message.into(),
            http_status: 0,
        }
    }
}

/// Classify a bollard error.
pub fn classify(e: &BollardError) -> DockerError {
    if let BollardError::DockerResponseServerError {
        status_code,
        message,
    } = e
    {
        let code = if *status_code == 404 {
            ErrorCode::NoSuchContainer
        } else {
            ErrorCode::DockerError
        };
        let mut err = DockerError::new(code, message.clone());
        err.http_status = *status_code;
        return err;
    }
    let text = format!("{e} {e:?}");
    if text.contains("Permission denied") || text.contains("PermissionDenied") {
        return DockerError::new(
            ErrorCode::DockerPermissionDenied,
            "permission denied on the Docker socket (is the agent's user in the docker group?)",
        );
    }
    let unreachable = [
        "No such file",
        "NotFound",
        "Connection refused",
        "ConnectionRefused",
        "ConnectionReset",
        "error trying to connect",
        "client error (Connect)",
        "Hyper",
        "hyper",
        "timed out",
        "RequestTimeout",
        "Socket",
    ];
    if unreachable.iter().any(|n| text.contains(n)) {
        return DockerError::new(
            ErrorCode::DockerUnavailable,
            format!("the Docker Engine is unreachable: {e}"),
        );
    }
    DockerError::new(ErrorCode::DockerError, e.to_string())
}

/// The agent's handle on the engine.
pub struct Engine {
    client: Mutex<Option<Docker>>,
    scope: Option<Selector>,
}

impl Engine {
    /// An engine handle; nothing is contacted until first use.
    pub fn new(scope: Option<Selector>) -> Self {
        Engine {
            client: Mutex::new(None),
            scope,
        }
    }

    /// A negotiated client, connecting first if needed.
    pub async fn docker(&self) -> Result<Docker, DockerError> {
        if let Some(d) = lock(&self.client).clone() {
            return Ok(d);
        }
        let docker = Docker::connect_with_defaults().map_err(|e| classify(&e))?;
        let docker = match tokio::time::timeout(PROBE_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(classify(&e)),
            Err(_) => {
                return Err(DockerError::new(
                    ErrorCode::DockerUnavailable,
                    "the Docker Engine did not answer within 3s",
                ))
            }
        };
        *lock(&self.client) = Some(docker.clone());
        Ok(docker)
    }

    /// Note a failure: an unreachable engine is re-negotiated on next use.
    pub fn failed(&self, e: &DockerError) {
        if e.code == ErrorCode::DockerUnavailable {
            *lock(&self.client) = None;
        }
    }

    /// Run `f` with a client, classifying its error.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, DockerError>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: std::future::Future<Output = Result<T, BollardError>>,
    {
        let docker = self.docker().await?;
        match f(docker).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let err = classify(&e);
                self.failed(&err);
                Err(err)
            }
        }
    }

    /// Whether a container with these labels is in scope.
    pub fn visible(&self, labels: Option<&HashMap<String, String>>) -> bool {
        match &self.scope {
            None => true,
            Some(sel) => {
                let l: Labels = labels
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                sel.matches(&l)
            }
        }
    }

    /// Whether the engine answers, and which versions.
    pub async fn status(&self) -> DockerStatus {
        let r = self
            .call(|d| async move {
                let v = tokio::time::timeout(PROBE_TIMEOUT, d.version())
                    .await
                    .map_err(|_| BollardError::RequestTimeoutError)?;
                v.map(|v| (v, d.client_version().to_string()))
            })
            .await;
        match r {
            Ok((v, api)) => DockerStatus {
                available: true,
                version: v.version,
                api_version: Some(api),
                error: None,
            },
            Err(e) => DockerStatus {
                available: false,
                error: Some(e.message),
                ..Default::default()
            },
        }
    }
}
