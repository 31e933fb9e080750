#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A cluster hub whose PostgreSQL goes away (issue 23): the agent's key
//! cannot be checked, and that is not a refusal. The hub closes the
//! connection (the agent dials again, or another hub, as after any failed
//! dial) instead of answering "key refused", which would penalise the
//! source and tell the agent its key is wrong; once the store is back the
//! agent is online again without re-enrolment. Real parts: PostgreSQL from
//! Debian's packages started by the test (initdb + pg_ctl), one hub
//! process, one agent process.

use std::time::{Duration, Instant};

use nextdeploy_tests::cluster::Shared;
use nextdeploy_tests::*;

/// The agent is online again within this once the store is back (its
/// backoff after a few failed dials, at most 16 s here, plus a lease).
const BACK_WAIT: Duration = Duration::from_secs(40);

#[test]
fn a_store_gone_during_authentication_closes_the_connection_without_refusing_the_key() {
    let shared = Shared::on_postgres();
    let pg = shared.pg.as_ref().unwrap();
    let hub = shared.first();
    let mut agent = enroll_agent(&hub, "sd-a", "").unwrap();
    wait_online(&hub, &["sd-a"], Duration::from_secs(20)).unwrap();

    pg.stop();
    // The hub loses its store: it cuts its agents (heartbeat) and cannot
    // check the key of the one dialling again.
    agent.kill();
    agent.start().unwrap();
    wait_until(
        "the hub closes a dial whose key it cannot check",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            Ok(hub
                .log_text()
                .contains("cannot check the key (store error): closing the connection")
                .then_some(()))
        },
    )
    .unwrap();
    wait_until(
        "the agent sees a failed dial",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            Ok(agent
                .log_text()
                .contains("the hub closed the connection before answering the key")
                .then_some(()))
        },
    )
    .unwrap();
    let agent_log = agent.log_text();
    assert!(
        !agent_log.contains("refused this agent's key"),
        "a store error was answered as a refused key:\n{agent_log}"
    );
    assert!(
        !hub.log_text().contains("refused key"),
        "{}",
        hub.log_tail()
    );

    pg.start_again();
    let back = Instant::now();
    wait_online(&hub, &["sd-a"], BACK_WAIT).unwrap();
    eprintln!("sd-a online {:?} after the store came back", back.elapsed());
    assert!(!agent.log_text().contains("refused this agent's key"));
}
