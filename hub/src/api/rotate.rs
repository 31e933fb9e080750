//! `rotate_key` (admin): replace an online agent's key without dropping it.
//! The request reaches the agent over its tunnel, which it authenticated with
//! the old key (possession of the old key). The agent makes a new key and
//! signs a fresh hub nonce with it (possession of the new key). The store then
//! swaps the keys in one statement that also checks the old key is still the
//! current one; the agent is told to make the new key current. The live
//! connection stays up throughout; the old key is refused from then on.

use crate::limits::ROTATE_STEP_TIMEOUT;

use nextdeploy_shared::keys;
use nextdeploy_shared::protocol::agents::{KeyRotated, RotateKey, RotateKeyCommit, RotateKeyProof};
use nextdeploy_shared::protocol::{Action, ReplyType, Request};
use russh::keys::ssh_key::SshSig;
use russh::keys::Algorithm;
use serde_json::Value;

use super::{ApiError, Caller};
use crate::agents::stream::ReplyStream;
use crate::agents::AgentConn;
use crate::store::{self, Role};
use crate::Services;

/// The SSHSIG namespace of rotation proofs (the agent signs with the same).
pub const ROTATE_NAMESPACE: &str = "nextdeploy-rotate-key";

/// Ask `conn` for one result.
async fn ask(conn: &AgentConn, action: Action) -> Result<Value, ApiError> {
    let (what, payload) = action.into_parts();
    let fail = |m: String| ApiError::Conflict(format!("agent {}: {what} failed: {m}", conn.name));
    let work = async {
        // Only admins rotate keys.
        let mut s = ReplyStream::open(conn, Role::Admin, 0, what, payload)
            .await
            .map_err(|e| fail(e.to_string()))?;
        while let Some(r) = s.next().await {
            let r = r.map_err(|e| fail(e.to_string()))?;
            match r.kind {
                ReplyType::Result => return Ok(r.data),
                ReplyType::Error => {
                    let m = r
                        .data
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("error");
                    return Err(fail(m.to_string()));
                }
                _ => {}
            }
        }
        Err(fail("no answer".into()))
    };
    tokio::time::timeout(ROTATE_STEP_TIMEOUT, work)
        .await
        .map_err(|_| {
            fail(format!(
                "no answer within {}s",
                ROTATE_STEP_TIMEOUT.as_secs()
            ))
        })?
}

/// Rotate the key of the agent named by `server` (or `payload.name`).
pub async fn rotate(
    svc: &Services,
    caller: &Caller,
    req: &Request,
    p: RotateKey,
) -> Result<Value, ApiError> {
    let name =
        req.server.clone().or(p.name).ok_or_else(|| {
            ApiError::BadRequest("rotate_key needs server (the agent's name)".into())
        })?;
    let n = name.clone();
    let rec = store::blocking(&svc.store, move |s| s.agent_by_name(&n))
        .await?
        .filter(|r| r.revoked_at.is_none())
        .ok_or_else(|| {
            ApiError::NotFound(format!("no enrolled, unrevoked agent named {name:?}"))
        })?;
    let conn = svc.registry.get(&name).ok_or_else(|| {
        ApiError::Conflict(format!("agent {name} is offline; rotation needs it online"))
    })?;
    let nonce = hex::encode(rand::random::<[u8; 32]>());
    let ask_key = Action::RotateKey(RotateKey {
        name: None,
        nonce: Some(nonce.clone()),
    });
    let v = ask(&conn, ask_key).await?;
    let bad = |m: &str| ApiError::Conflict(format!("agent {name}: rotation refused: {m}"));
    let proof: RotateKeyProof =
        serde_json::from_value(v).map_err(|e| bad(&format!("malformed answer: {e}")))?;
    let line = proof.public_key;
    let new_key = keys::parse_public(&line).map_err(|e| bad(&e))?;
    if new_key.algorithm() != Algorithm::Ed25519 {
        return Err(bad("the new key is not ed25519"));
    }
    let sig = SshSig::from_pem(&proof.signature)
        .map_err(|e| bad(&format!("malformed signature: {e}")))?;
    new_key
        .verify(ROTATE_NAMESPACE, nonce.as_bytes(), &sig)
        .map_err(|_| bad("the signature does not prove the new key"))?;
    let new_line = keys::public_line(&new_key);
    if new_line == rec.public_key {
        return Err(bad("the new key equals the old one"));
    }
    let new_fp = keys::fingerprint(&new_key);
    let (n, old, nl, nf) = (
        name.clone(),
        rec.public_key.clone(),
        new_line.clone(),
        new_fp.clone(),
    );
    if !store::blocking(&svc.store, move |s| s.rotate_agent_key(&n, &old, &nl, &nf)).await? {
        return Err(ApiError::Conflict(format!(
            "agent {name}: the key changed or the agent was revoked meanwhile; nothing swapped"
        )));
    }
    // The store holds the new key now; a lost confirmation is recovered by the
    // agent trying its pending key when the old one is refused.
    let commit = Action::RotateKeyCommit(RotateKeyCommit {
        public_key: new_line,
    });
    let committed = ask(&conn, commit)
        .await
        .map_err(|e| tracing::warn!(error = %e, "rotation confirmation not acknowledged"))
        .is_ok();
    let detail = format!("{} -> {new_fp}", rec.fingerprint);
    super::admin::audit(svc, caller, "rotate_key", &name, &detail).await;
    tracing::info!(agent = %name, old = %rec.fingerprint, new = %new_fp, "agent key rotated");
    let rotated = KeyRotated {
        name,
        old_fingerprint: rec.fingerprint,
        new_fingerprint: new_fp,
        agent_confirmed: committed,
    };
    Ok(serde_json::to_value(rotated).unwrap_or_default())
}
