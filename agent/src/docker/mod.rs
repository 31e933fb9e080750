//! The local Docker Engine through bollard, with the API version negotiated
//! (old engines refuse a client that asks for a newer API). DOCKER_HOST is
//! honoured by bollard's defaults.

use std::time::Duration;

use bollard::Docker;
use nextdeploy_shared::protocol::DockerStatus;

/// How long a status probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connect and negotiate; `Err` says why Docker is unavailable.
pub async fn connect() -> Result<Docker, String> {
    let docker = Docker::connect_with_defaults().map_err(|e| e.to_string())?;
    match tokio::time::timeout(PROBE_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the Docker Engine did not answer within 3s".into()),
    }
}

/// Whether the engine answers, and which versions.
pub async fn status() -> DockerStatus {
    let docker = match connect().await {
        Ok(d) => d,
        Err(e) => {
            return DockerStatus {
                available: false,
                error: Some(e),
                ..Default::default()
            }
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, docker.version()).await {
        Ok(Ok(v)) => DockerStatus {
            available: true,
            version: v.version,
            api_version: Some(docker.client_version().to_string()),
            error: None,
        },
        Ok(Err(e)) => DockerStatus {
            available: false,
            error: Some(e.to_string()),
            ..Default::default()
        },
        Err(_) => DockerStatus {
            available: false,
            error: Some("the Docker Engine did not answer within 3s".into()),
            ..Default::default()
        },
    }
}
