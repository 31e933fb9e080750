//! Bearer-token authentication of API clients.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nextdeploy_shared::time::now_unix;
use nextdeploy_shared::token::{self, verify_secret, API_PREFIX};

use crate::store::{self, Role};
use crate::Services;

/// An authenticated API client.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token id.
    pub token_id: String,
    /// Token name (the actor in the audit log).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When the token expires (Unix seconds); None: never.
    pub expires_at: Option<i64>,
    /// Whether it may `exec` (tokens made with `no_exec` may not).
    pub exec: bool,
    /// The hub of the cluster that forwarded this caller's request (its
    /// id): the request is answered here, never forwarded again.
    pub forwarded_by: Option<String>,
}

impl Caller {
    /// How long the token has left: zero once expired, None if it never expires.
    pub fn time_left(&self) -> Option<Duration> {
        let at = UNIX_EPOCH + Duration::from_secs(self.expires_at?.max(0) as u64);
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

/// Why an open connection's token stopped being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEnd {
    /// An admin revoked it.
    Revoked,
    /// Its expiry time passed.
    Expired,
    /// The dashboard session it was opened with ended (sign-out, eviction).
    SignedOut,
}

impl TokenEnd {
    /// The close frame's reason.
    pub fn reason(self) -> &'static str {
        match self {
            TokenEnd::Revoked => "token revoked",
            TokenEnd::Expired => "token expired",
            TokenEnd::SignedOut => "signed out",
        }
    }
}

/// Whether the caller's token has been revoked, read from the store (for a
/// connection that missed revocation announcements). A store failure counts
/// as revoked: the connection cannot show its token is still good.
pub async fn revoked_in_store(svc: &Services, caller: &Caller) -> bool {
    let id = caller.token_id.clone();
    match store::blocking(&svc.store, move |s| s.api_token(&id)).await {
        Ok(Some(rec)) => rec.revoked_at.is_some(),
        Ok(None) | Err(_) => true,
    }
}

/// Why a token was refused. Unknown id and wrong secret are deliberately one case.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing Authorization: Bearer token")]
    Missing,
    /// Unknown id, wrong secret or not an API token.
    #[error("invalid token")]
    Invalid,
    /// Expired.
    #[error("token expired")]
    Expired,
    /// Revoked.
    #[error("token revoked")]
    Revoked,
    /// The store failed.
    #[error("token check failed: {0}")]
    Store(#[from] store::StoreError),
}

/// Check a bearer token against the store.
pub async fn authenticate(svc: &Services, bearer: Option<&str>) -> Result<Caller, AuthError> {
    let text = bearer.ok_or(AuthError::Missing)?;
    let parsed = token::parse(text).map_err(|_| AuthError::Invalid)?;
    if parsed.kind != API_PREFIX {
        return Err(AuthError::Invalid);
    }
    let id = parsed.id.clone();
    let rec = store::blocking(&svc.store, move |s| s.api_token(&id)).await?;
    let Some(rec) = rec else {
        // Same work as a real comparison, same answer as a wrong secret.
        let _ = verify_secret(parsed.secret.expose(), "");
        return Err(AuthError::Invalid);
    };
    if !verify_secret(parsed.secret.expose(), &rec.secret_hash) {
        return Err(AuthError::Invalid);
    }
    still_valid(rec)
}

/// The caller of token `token_id`, read again from the store: for a
/// dashboard session, whose token was checked at sign-in and must still be
/// unrevoked and unexpired at every use.
pub async fn recheck(svc: &Services, token_id: &str) -> Result<Caller, AuthError> {
    let id = token_id.to_string();
    match store::blocking(&svc.store, move |s| s.api_token(&id)).await? {
        Some(rec) => still_valid(rec),
        None => Err(AuthError::Invalid),
    }
}

/// The caller a token record stands for, unless it is revoked or expired.
fn still_valid(rec: store::ApiTokenRecord) -> Result<Caller, AuthError> {
    if rec.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if rec.expires_at.is_some_and(|t| t <= now_unix()) {
        return Err(AuthError::Expired);
    }
    Ok(Caller {
        token_id: rec.id,
        name: rec.name,
        role: rec.role,
        expires_at: rec.expires_at,
        exec: !rec.no_exec,
        forwarded_by: None,
    })
}
