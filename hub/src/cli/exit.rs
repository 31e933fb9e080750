//! Exit codes: the one table every client command exits by, so that scripts
//! can tell "not there" from "not allowed" from "try again later".
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure |
//! | 2 | usage: bad flags or arguments (clap's own code), or a request the hub called malformed |
//! | 3 | not found: unknown agent, container, token or deploy; a selector matching no agent |
//! | 4 | forbidden: the token's role does not allow the action, or the hub refused the token |
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
/// The role does not allow it, or the token was refused.
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
        ErrorCode::Forbidden => FORBIDDEN,
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

/// What a failed command was, for [`for_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// `agent deploy` or `agent rollback`.
    Deploy,
    /// Anything else.
    Other,
}

/// The exit code of a failed command: by the first typed error in its chain.
/// A deploy's own failure (its summary already printed) is told by what
/// cli/deploys.rs says, "deploy rolled_back", "rollback failed: ...", "the
/// fleet deploy stopped ...", until it returns [`DeployFailed`].
pub fn for_error(e: &anyhow::Error, ran: Ran) -> i32 {
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
    let text = e.to_string();
    let deploy_outcome = ["deploy ", "rollback ", "the fleet deploy stopped"]
        .iter()
        .any(|p| text.starts_with(p));
    if ran == Ran::Deploy && deploy_outcome {
        DEPLOY_FAILED
    } else {
        OTHER
    }
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
        assert_eq!(for_error(&hub(ErrorCode::UnknownAgent), Ran::Other), 3);
        assert_eq!(for_error(&hub(ErrorCode::Forbidden), Ran::Deploy), 4);
        assert_eq!(for_error(&hub(ErrorCode::AgentOffline), Ran::Other), 5);
        let timeout = hub(ErrorCode::Timeout).context("ping");
        assert_eq!(for_error(&timeout, Ran::Other), 6);
        let refused = anyhow::Error::new(ConnectError::Refused("x".into()));
        assert_eq!(for_error(&refused, Ran::Other), FORBIDDEN);
        let usage = anyhow::Error::new(Usage("--tail -5".into()));
        assert_eq!(for_error(&usage, Ran::Other), USAGE);
        let rolled = anyhow::anyhow!("deploy rolled_back");
        assert_eq!(for_error(&rolled, Ran::Deploy), DEPLOY_FAILED);
        assert_eq!(for_error(&rolled, Ran::Other), OTHER);
        let bad_flag = anyhow::anyhow!("invalid duration \"x\"");
        assert_eq!(for_error(&bad_flag, Ran::Deploy), OTHER);
    }
}
