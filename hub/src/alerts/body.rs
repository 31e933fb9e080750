//! What receivers get. The outbox keeps the webhook body (below); a Slack
//! channel gets `{"text": ...}` made from it at sending time.
//!
//! The webhook body, one JSON object: `id` (the notification's, stable across
//! retries: receivers dedupe on it), `alert_id`, `rule`, `status` (`firing`
//! or `resolved`), `condition`, `severity`, `server`, `container` (or null),
//! `labels`, `summary`, `started_at`, `resolved_at` (or null), `value`.
//! With a secret, `X-NextDeploy-Signature: sha256=<hex HMAC-SHA256 of the
//! body>`, as GitHub signs its webhooks.

use nextdeploy_shared::protocol::alerts::{AlertInfo, AlertStatus};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-NextDeploy-Signature";

/// The id of an alert's notification of `status`.
pub fn notification_id(alert: &str, status: AlertStatus) -> String {
    format!("{alert}-{}", status.as_str())
}

/// The webhook body of `alert`'s notification `id` (its `status` is the
/// notification's).
pub fn webhook(id: &str, a: &AlertInfo) -> String {
    json!({
        "id": id,
        "alert_id": a.id,
        "rule": a.rule,
        "status": a.status,
        "condition": a.condition,
        "severity": a.severity,
        "server": a.server,
        "container": a.container,
        "labels": a.labels,
        "summary": a.summary,
        "started_at": a.started_at,
        "resolved_at": a.resolved_at,
        "value": a.value,
    })
    .to_string()
}

/// A Slack incoming-webhook message made from a webhook body.
pub fn slack(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let mark = match s("status").as_str() {
        "firing" => ":red_circle: FIRING",
        "resolved" => ":large_green_circle: RESOLVED",
        _ => ":information_source:",
    };
    let text = format!(
        "{mark} [{}] {} (rule {}, since {})",
        s("severity"),
        s("summary"),
        s("rule"),
        s("started_at")
    );
    json!({ "text": text }).to_string()
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

/// HMAC (RFC 2104) over SHA-256, written out: the hub's `hmac` crate (0.13,
/// for known_hosts' SHA-1) speaks `digest` 0.11 while its `sha2` is 0.10,
/// and the construction is nine lines.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 4231 test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        let slack = slack(r#"{"status":"firing","rule":"crashed","summary":"web died"}"#);
        assert!(
            slack.contains("FIRING") && slack.contains("web died"),
            "{slack}"
        );
    }
}
