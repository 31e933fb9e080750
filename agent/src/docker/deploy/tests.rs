//! Unit tests of the deployer's journal.

use super::*;

/// An acknowledgement's id is checked like a request's: one that would
/// name a file outside the journal folder is refused and that file is
/// left as it is.
#[test]
fn an_ack_with_a_bad_deploy_id_is_refused_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("deploys");
    std::fs::create_dir_all(&dir).unwrap();
    let journal = Journal {
        request: DeployRequest {
            deploy_id: "x".into(),
            image: "app:1".into(),
            container: None,
            pull: default_pull(),
            health_timeout_s: 1,
            keep_previous: false,
            settle_s: None,
            rollback: false,
            watch_s: None,
        },
        steps: Vec::new(),
        outcome: Some(DeployOutcome::default()),
        delivered: false,
    };
    let outside = root.path().join("outside.json");
    let text = serde_json::to_vec(&journal).unwrap();
    std::fs::write(&outside, &text).unwrap();
    let (push, _) = broadcast::channel(1);
    let engine = Arc::new(Engine::new(None));
    let d = Deployer::new(engine, dir.clone(), push);
    for bad in [
        "../outside",
        "",
        "a/b",
        "a.b",
        &"a".repeat(MAX_DEPLOY_ID_LEN + 1),
    ] {
        let e = d.acknowledged(bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{bad:?}");
        assert!(e.to_string().contains("deploy_id"), "{e}");
    }
    assert_eq!(std::fs::read(&outside).unwrap(), text);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    let good = "a".repeat(MAX_DEPLOY_ID_LEN);
    d.acknowledged(&good).unwrap();
    d.acknowledged("0123-abcd").unwrap();
}
