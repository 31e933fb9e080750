#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Pull policies against a real registry (Debian's `docker-registry` on a
//! loopback port): `--pull always` fetches a tag's new digest, `--pull never`
//! with a missing image and an unreachable registry fail cleanly and change
//! nothing.

use std::time::Duration;

use nextdeploy_tests::deploy::{
    config_fingerprint, free_port, image_id, inspect, wait_http, DeployEnv, DeployRun, Fixture,
    Registry,
};
use nextdeploy_tests::docker::{docker, docker_raw};

/// Removes image tags on drop.
struct Tags(Vec<String>);

impl Drop for Tags {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = docker_raw(&["rmi", t]);
        }
    }
}

/// The deploy failed at the pull, cleanly: non-zero exit, outcome failed
/// with the image named, and the container untouched.
fn assert_failed_cleanly(
    env: &DeployEnv,
    run: &DeployRun,
    name: &str,
    image: &str,
    before: &serde_json::Value,
) {
    assert!(!run.out.success(), "exited 0\n{}", run.describe());
    let doc = &run.doc;
    assert_eq!(
        doc["outcome"],
        "failed",
        "{}\n{}",
        run.describe(),
        env.logs()
    );
    let c = run.container();
    assert_eq!(c["failed_step"], "pull", "{doc}");
    let err = c["error"].as_str().unwrap_or_default();
    assert!(err.contains(image), "the error should name {image}: {err}");
    assert!(
        run.out.stderr.contains(image),
        "the CLI's message should name {image}\n{}",
        run.describe()
    );
    let now = inspect(name).unwrap();
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    assert_eq!(config_fingerprint(&now), *before, "the container changed");
    let id = run.id().unwrap();
    let shown = env
        .wait_status(&id, "failed", Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        shown["outcome"]["containers"][0]["failed_step"], "pull",
        "{shown}"
    );
}

#[test]
fn pull_policies_against_a_registry() {
    let env = DeployEnv::start("pull").unwrap();
    let reg = Registry::start().unwrap();
    let a = reg.addr();
    let mut tags = Tags(Vec::new());
    let v1 = reg.push(&Fixture::V1.image().unwrap(), "app:v1").unwrap();
    tags.0.push(v1.clone());
    let v2 = reg.push(&Fixture::V2.image().unwrap(), "app:v2").unwrap();
    tags.0.push(v2.clone());
    let old_v2_digest = reg.digest("app", "v2").unwrap();
    // A new build under the same tag; locally the tag keeps the old build.
    reg.push(&Fixture::V2b.image().unwrap(), "app:v2").unwrap();
    docker(&["tag", &Fixture::V2.image().unwrap(), &v2]).unwrap();
    let new_v2_digest = reg.digest("app", "v2").unwrap();
    assert_ne!(
        old_v2_digest, new_v2_digest,
        "the re-push did not change the tag's digest"
    );
    let (old_v2_id, new_v2_id) = (
        Fixture::V2.image_id().unwrap(),
        Fixture::V2b.image_id().unwrap(),
    );
    assert_eq!(image_id(&v2).unwrap(), old_v2_id);

    let port = free_port().unwrap();
    let (name, _) = env
        .run(
            "web",
            &v1,
            &[
                "-e",
                "APP_MODE=custom",
                "-p",
                &format!("127.0.0.1:{port}:8080"),
            ],
        )
        .unwrap();
    wait_http(port, "version 1", Duration::from_secs(10)).unwrap();

    // --pull missing: the local build of the tag.
    let run = env
        .deploy(&["--container", &name, "--image", &v2, "--pull", "missing"])
        .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    assert_eq!(inspect(&name).unwrap()["Image"], old_v2_id.as_str());

    // --pull always: the registry's newest build of the tag.
    let run = env
        .deploy(&["--container", &name, "--image", &v2, "--pull", "always"])
        .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    let now = inspect(&name).unwrap();
    assert_eq!(
        now["Image"],
        new_v2_id.as_str(),
        "--pull always did not deploy the registry's newest {v2} ({new_v2_digest})"
    );
    assert_eq!(now["Config"]["Image"], v2.as_str());
    let repo_digests =
        docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", &v2]).unwrap();
    assert!(
        repo_digests.contains(&new_v2_digest),
        "local {v2} is not the registry's {new_v2_digest}: {repo_digests}"
    );
    assert!(
        run.progress()
            .iter()
            .any(|p| p["step"] == "pull" && p["status"] == "done"),
        "{}",
        run.describe()
    );
    wait_http(port, "version 2 mode custom", Duration::from_secs(10)).unwrap();

    // --pull never with an image that is not here.
    let before = config_fingerprint(&inspect(&name).unwrap());
    let absent = format!("{a}/app:absent");
    let run = env
        .deploy(&["--container", &name, "--image", &absent, "--pull", "never"])
        .unwrap();
    assert_failed_cleanly(&env, &run, &name, &absent, &before);

    // A registry nobody answers on.
    let dead = format!("127.0.0.1:{}/app:v2", free_port().unwrap());
    for policy in ["missing", "always"] {
        let run = env
            .deploy(&["--container", &name, "--image", &dead, "--pull", policy])
            .unwrap();
        assert_failed_cleanly(&env, &run, &name, &dead, &before);
        assert!(
            run.out.elapsed < Duration::from_secs(30),
            "an unreachable registry took {:?} to fail",
            run.out.elapsed
        );
    }
    wait_http(port, "version 2 mode custom", Duration::from_secs(5)).unwrap();
}
