#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `nextdeploy-agent withdraw`: an agent undoes its own recent enrolment with
//! its key (what install-agent.sh does when an install fails after
//! enrolling). The hub forgets it and logs it, its join token works again; a
//! second withdrawal, or a revoked agent, is refused.

use std::process::Command;

use nextdeploy_tests::*;

fn withdraw(a: &Agent) -> Output {
    let mut cmd = Command::new(agent_bin().unwrap());
    cmd.arg("withdraw").arg("--config").arg(&a.config);
    run_bounded(cmd, CLI_TIMEOUT).unwrap()
}

#[test]
fn withdrawn_enrolment_is_forgotten_and_its_token_reusable() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("wd-1", "env=test", "10m").unwrap();
    let a = Agent::enroll(&hub, "wd-1", &jt.token).unwrap();
    assert_eq!(hub.agent_list().unwrap().len(), 1);

    let out = withdraw(&a);
    assert!(
        out.success() && out.mentions("withdrew"),
        "{}",
        out.describe()
    );
    assert!(
        hub.agent_list().unwrap().is_empty(),
        "{:?}",
        hub.agent_list()
    );
    assert!(
        hub.log_text().contains("enrolment withdrawn by the agent"),
        "{}",
        hub.log_tail()
    );

    // Its key is unknown now: a second withdrawal is refused.
    let out = withdraw(&a);
    assert!(
        !out.success() && out.mentions("refused"),
        "{}",
        out.describe()
    );

    // The same join token enrols again (a new key), and that agent comes online.
    let mut b = Agent::enroll(&hub, "wd-1", &jt.token).unwrap();
    b.start().unwrap();
    wait_online(&hub, &["wd-1"], std::time::Duration::from_secs(10)).unwrap();
    // The old key stays refused.
    let out = withdraw(&a);
    assert!(!out.success(), "{}", out.describe());
}

#[test]
fn revoked_agent_cannot_withdraw() {
    let hub = start_hub().unwrap();
    let a = enroll_agent(&hub, "wd-2", "").unwrap();
    hub.cli(&["agent", "revoke", "wd-2"]).unwrap().ok().unwrap();
    let out = withdraw(&a);
    assert!(
        !out.success() && out.mentions("refused"),
        "{}",
        out.describe()
    );
    assert!(
        !hub.log_text().contains("enrolment withdrawn"),
        "{}",
        hub.log_tail()
    );
}
