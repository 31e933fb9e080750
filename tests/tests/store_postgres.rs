#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store on PostgreSQL: the store suite (the same cases SQLite's unit
//! tests run) on a server of the test's own, and what several hubs on one
//! database need: one enrolment per join token and one rotation per key
//! whatever the number of concurrent hubs, a revocation heard by every
//! store within a second, clear errors without the password.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use nextdeploy_hub::store::postgres::PgStore;
use nextdeploy_hub::store::{JoinRefusal, JoinTokenRecord, Store};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::token::hash_secret;
use nextdeploy_tests::postgres::Postgres;

#[test]
fn the_store_suite_passes_on_postgresql() {
    let pg = Postgres::start();
    nextdeploy_hub::store::suite::run(|| PgStore::open(&pg.create_db()).unwrap());
}

fn join(s: &dyn Store, id: &str, name: &str) {
    s.insert_join_token(&JoinTokenRecord {
        id: id.into(),
        secret_hash: hash_secret("sec"),
        name: name.into(),
        labels: Labels::new(),
        created_at: 0,
        expires_at: i64::MAX,
        used_at: None,
        created_by: "test".into(),
    })
    .unwrap();
}

/// Several hubs (a store each, on its own connections) race to consume one
/// token, a round per token: exactly one enrols, the others are told it is
/// used; rotations of one key race the same way.
#[test]
fn concurrent_hubs_consume_a_join_token_and_rotate_a_key_once() {
    const HUBS: usize = 6;
    const ROUNDS: usize = 10;
    let pg = Postgres::start();
    let url = pg.create_db();
    let stores: Vec<Arc<PgStore>> = (0..HUBS)
        .map(|_| Arc::new(PgStore::open(&url).unwrap()))
        .collect();
    for round in 0..ROUNDS {
        join(
            stores[0].as_ref(),
            &format!("t{round}"),
            &format!("a{round}"),
        );
        let barrier = Arc::new(Barrier::new(HUBS));
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (s, barrier) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let key = format!("k{round}-{i}");
                    s.consume_join_token(&format!("t{round}"), "sec", &key, "f", 1)
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        let winner_key = won[0].public_key.clone();
        assert!(results.iter().all(|r| match r {
            Ok(_) => true,
            Err(e) => *e == nextdeploy_hub::store::JoinRefusal::Used,
        }));

        let barrier = Arc::new(Barrier::new(HUBS));
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (s, barrier, old) = (s.clone(), barrier.clone(), winner_key.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    s.rotate_agent_key(&format!("a{round}"), &old, &format!("r{round}-{i}"), "f2")
                        .unwrap()
                })
            })
            .collect();
        let rotated = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|&b| b)
            .count();
        assert_eq!(rotated, 1, "round {round}");
    }
    assert_eq!(stores[HUBS - 1].list_agents().unwrap().len(), ROUNDS);

    // One name, a token each: one hub enrols it, the others are told the
    // name is taken and their tokens stay usable.
    for round in 0..ROUNDS {
        for i in 0..HUBS {
            join(
                stores[0].as_ref(),
                &format!("n{round}-{i}"),
                &format!("same{round}"),
            );
        }
        let barrier = Arc::new(Barrier::new(HUBS));
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (s, barrier) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let key = format!("nk{round}-{i}");
                    s.consume_join_token(&format!("n{round}-{i}"), "sec", &key, "f", 1)
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        for (i, r) in results.iter().enumerate() {
            if let Err(e) = r {
                assert!(matches!(e, JoinRefusal::NameTaken(_)), "{e:?}");
                let t = stores[0]
                    .join_token(&format!("n{round}-{i}"))
                    .unwrap()
                    .unwrap();
                assert_eq!(t.used_at, None, "a refused token was burnt");
            }
        }
    }
}

/// A token revoked through one store is announced by every store on the
/// database within a second, once.
#[test]
fn a_revocation_reaches_every_store_within_a_second() {
    let pg = Postgres::start();
    let url = pg.create_db();
    let a = PgStore::open(&url).unwrap();
    let b = PgStore::open(&url).unwrap();
    let mut heard_b = b.revocations();
    let mut heard_a = a.revocations();
    a.insert_api_token(&nextdeploy_hub::store::ApiTokenRecord {
        id: "tok".into(),
        secret_hash: hash_secret("s"),
        name: "ops".into(),
        role: nextdeploy_hub::store::Role::Admin,
        created_at: 1,
        expires_at: None,
        revoked_at: None,
        no_exec: false,
    })
    .unwrap();
    let t = std::time::Instant::now();
    assert!(a.revoke_api_token("tok", 2).unwrap());
    let recv = nextdeploy_hub::store::suite::recv_within;
    assert_eq!(recv(&mut heard_b).as_deref(), Some("tok"));
    eprintln!(
        "revocation heard by the other store after {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(recv(&mut heard_a).as_deref(), Some("tok"));
    assert!(!b.revoke_api_token("tok", 3).unwrap());
    assert_eq!(recv(&mut heard_b), None, "announced once");
}

/// A URL that cannot be parsed or reached is an error naming it, without
/// its password.
#[test]
fn bad_store_urls_are_clear_errors_without_the_password() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://nd:hunter2@127.0.0.1:{port}/nextdeploy");
    let err = PgStore::open(&url).err().unwrap().to_string();
    assert!(
        err.contains(&format!("postgres://nd:****@127.0.0.1:{port}/nextdeploy")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let err = PgStore::open("postgres://nd:hunter2@127.0.0.1:notaport/x")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("invalid store URL") && !err.contains("hunter2"),
        "{err}"
    );
}

fn api_token(id: &str) -> nextdeploy_hub::store::ApiTokenRecord {
    nextdeploy_hub::store::ApiTokenRecord {
        id: id.into(),
        secret_hash: hash_secret("s"),
        name: "ops".into(),
        role: nextdeploy_hub::store::Role::Admin,
        created_at: 1,
        expires_at: None,
        revoked_at: None,
        no_exec: false,
    }
}

/// The server restarts under two stores: their calls work again (a store
/// connects again; the call that found the connection closed may fail), a
/// revocation made while the listener was away is announced when it is
/// back (read from the table), and the next within a second.
#[test]
fn stores_carry_on_after_the_server_restarts() {
    let pg = Postgres::start();
    let url = pg.create_db();
    let a = PgStore::open(&url).unwrap();
    let b = PgStore::open(&url).unwrap();
    let mut heard_b = b.revocations();
    a.insert_api_token(&api_token("t1")).unwrap();
    a.insert_api_token(&api_token("t2")).unwrap();
    pg.restart();
    let back = |s: &PgStore| {
        nextdeploy_tests::wait_until(
            "the store answers again",
            Duration::from_secs(10),
            Duration::from_millis(100),
            || Ok(s.api_token_count().ok()),
        )
        .unwrap()
    };
    assert_eq!(back(&a), 2);
    assert_eq!(back(&b), 2);
    let now = nextdeploy_shared::time::now_unix();
    assert!(a.revoke_api_token("t1", now).unwrap());
    let heard = nextdeploy_tests::wait_until(
        "the revocation after the restart",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(heard_b.try_recv().ok().filter(|id| id == "t1")),
    );
    assert_eq!(heard.unwrap(), "t1");
    // Listening again: the next one within the usual second.
    assert!(b.revoke_api_token("t2", now).unwrap());
    let recv = nextdeploy_hub::store::suite::recv_within;
    let next = std::iter::from_fn(|| recv(&mut heard_b)).find(|id| id == "t2");
    assert_eq!(next.as_deref(), Some("t2"));
}

/// The hub drops its store wherever the last handle goes, an async worker
/// included: closing the sync client's connections there must not panic.
#[test]
fn a_store_dropped_on_an_async_worker_closes_without_panicking() {
    let pg = Postgres::start();
    let url = pg.create_db();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = tokio::task::spawn_blocking(move || PgStore::open(&url).unwrap())
            .await
            .unwrap();
        let shared: nextdeploy_hub::store::SharedStore = Arc::new(store);
        let n = nextdeploy_hub::store::blocking(&shared, |s| s.api_token_count())
            .await
            .unwrap();
        assert_eq!(n, 0);
        tokio::spawn(async move { drop(shared) }).await.unwrap();
    });
}

/// The label index (what selectors match) is kept briefly: an agent enrolled
/// or revoked through another hub's store shows in this one's within
/// `PG_LABEL_INDEX_TTL`.
#[test]
fn other_hubs_enrolments_reach_the_label_index_within_its_ttl() {
    let pg = Postgres::start();
    let url = pg.create_db();
    let a = PgStore::open(&url).unwrap();
    let b = PgStore::open(&url).unwrap();
    assert!(b.agent_labels().unwrap().is_empty());
    join(&a, "t1", "web");
    a.consume_join_token("t1", "sec", "k1", "f1", 1)
        .unwrap()
        .unwrap();
    let ttl = nextdeploy_hub::limits::PG_LABEL_INDEX_TTL;
    let names = |s: &PgStore| -> Vec<String> {
        s.agent_labels()
            .unwrap()
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    };
    assert_eq!(names(&a), ["web"], "its own enrolment at once");
    let seen = nextdeploy_tests::wait_until(
        "the other store's index",
        ttl + Duration::from_millis(500),
        Duration::from_millis(50),
        || Ok((names(&b) == ["web"]).then_some(())),
    );
    assert!(seen.is_ok(), "not within {ttl:?}");
    assert!(a.revoke_agent("web", 2).unwrap());
    assert!(names(&a).is_empty(), "its own revocation at once");
    let gone = nextdeploy_tests::wait_until(
        "the revocation in the other store's index",
        ttl + Duration::from_millis(500),
        Duration::from_millis(50),
        || Ok(names(&b).is_empty().then_some(())),
    );
    assert!(gone.is_ok(), "not within {ttl:?}");
}
