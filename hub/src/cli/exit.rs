//! Exit codes: the one table every client command exits by, so that scripts
//! can tell "not there" from "not allowed" from "try again later".
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure |
//! | 2 | usage: bad flags or arguments (clap's own code), or a request the hub called malformed |
//! | 3 | not found: unknown agent, container, token or deploy; a selector matching no agent |
//! | 4 | forbidden: the token's role does not allow the action, the agent's policy refuses it, or the hub refused the token |
//! | 5 | unreachable: the agent is offline, or the hub cannot be reached |
//! | 6 | timeout: the agent did not answer in time |
//! | 7 | a deploy or rollback ran and failed (rolled back, or failed) |
//! | 130 | interrupted (Ctrl-C) |
//!
//! The hub's wire error codes map through [`for_code`]; everything else
//! through the error's type in [`for_error`].

use nextdeploy_shared::protocol::ErrorCode;

use super::client::{ConnectError, HubError};

/// Success.
pub const OK: i32 = 0;
/// Any failure without a code of its own.
pub const OTHER: i32 = 1;
/// Bad usage (clap exits with this code for the errors it finds).
pub const USAGE: i32 = 2;
/// Unknown agent, container, token or deploy.
pub const NOT_FOUND: i32 = 3;
/// The role or the agent's policy does not allow it, or the token was refused.
pub const FORBIDDEN: i32 = 4;
/// The agent is offline or the hub unreachable.
pub const UNREACHABLE: i32 = 5;
/// The agent did not answer in time.
pub const TIMEOUT: i32 = 6;
/// A deploy or rollback failed or was rolled back.
pub const DEPLOY_FAILED: i32 = 7;
/// Interrupted by SIGINT (128 + 2, as shells report it).
pub const INTERRUPTED: i32 = 130;

/// The exit code of a hub error code.
pub fn for_code(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::BadRequest | ErrorCode::UnknownAction | ErrorCode::Ambiguous => USAGE,
        ErrorCode::UnknownAgent
        | ErrorCode::NotFound
        | ErrorCode::NoSuchContainer
        | ErrorCode::AmbiguousContainer => NOT_FOUND,
        ErrorCode::Forbidden | ErrorCode::ForbiddenByPolicy => FORBIDDEN,
        ErrorCode::AgentOffline => UNREACHABLE,
        ErrorCode::Timeout => TIMEOUT,
        ErrorCode::Busy
        | ErrorCode::TooLarge
        | ErrorCode::Cancelled
        | ErrorCode::Conflict
        | ErrorCode::AgentError
        | ErrorCode::DockerUnavailable
        | ErrorCode::DockerPermissionDenied
        | ErrorCode::DockerError
        | ErrorCode::Internal => OTHER,
    }
}

/// A command line the hub was never asked about: a bad flag value found
/// after parsing (`--tail -5`, `--filter x`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A deploy or rollback that ran to its end without succeeding.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeployFailed(pub String);

/// The exit code of a failed command: by the first typed error in its chain.
pub fn for_error(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(h) = cause.downcast_ref::<HubError>() {
            return for_code(h.0.code);
        }
        if let Some(c) = cause.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Unreachable(_) => UNREACHABLE,
                ConnectError::Refused(_) | ConnectError::Untrusted(_) => FORBIDDEN,
            };
        }
        if cause.is::<Usage>() {
            return USAGE;
        }
        if cause.is::<DeployFailed>() {
            return DEPLOY_FAILED;
        }
    }
    OTHER
}

#[cfg(test)]
mod tests {
    use super::*;
    use nextdeploy_shared::protocol::ErrorBody;

    fn hub(code: ErrorCode) -> anyhow::Error {
        anyhow::Error::new(HubError(ErrorBody {
            code,
            message: "m".into(),
        }))
    }

    #[test]
    fn maps_each_kind_once() {
        assert_eq!(for_error(&hub(ErrorCode::UnknownAgent)), 3);
        assert_eq!(for_error(&hub(ErrorCode::Forbidden)), 4);
        assert_eq!(for_error(&hub(ErrorCode::AgentOffline)), 5);
        let timeout = hub(ErrorCode::Timeout).context("ping");
        assert_eq!(for_error(&timeout), 6);
        let refused = anyhow::Error::new(ConnectError::Refused("x".into()));
        assert_eq!(for_error(&refused), FORBIDDEN);
        let usage = anyhow::Error::new(Usage("--tail -5".into()));
        assert_eq!(for_error(&usage), USAGE);
        let rolled = anyhow::Error::new(DeployFailed("deploy rolled_back".into()));
        assert_eq!(for_error(&rolled.context("prod-1")), DEPLOY_FAILED);
        let bad_flag = anyhow::anyhow!("invalid duration \"x\"");
        assert_eq!(for_error(&bad_flag), OTHER);
    }
}
