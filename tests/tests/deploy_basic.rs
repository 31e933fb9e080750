#![allow(clippy::unwrap_used, clippy::expect_used)]
//! v1 -> v2 keeps what the user gave the container (env, labels, ports,
//! mounts, networks with aliases, restart policy) and takes what came from
//! the image (default env, labels) from the new image; plus a measurement of
//! the deploy against the same steps by hand, and the published port's
//! downtime during the swap.

use std::time::{Duration, Instant};

use nextdeploy_tests::deploy::{
    env_of, exists, free_port, http_body, image_id, inspect, is_rfc3339, label_of, median,
    step_secs, wait_http, DeployEnv, Fixture, PortPoller,
};
use nextdeploy_tests::docker::docker;
use nextdeploy_tests::TempDir;
use serde_json::Value;

#[test]
fn v1_to_v2_keeps_the_users_configuration_and_takes_the_new_images_defaults() {
    let mut env = DeployEnv::start("basic").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let net = env.network("net").unwrap();
    let vol = env.volume("vol").unwrap();
    let bind = TempDir::new("deploy-bind").unwrap();
    std::fs::write(bind.path().join("hello.txt"), "from the host\n").unwrap();
    let port = free_port().unwrap();
    let publish = format!("127.0.0.1:{port}:8080");
    let volume = format!("{vol}:/data");
    let bind_mount = format!("{}:/host:ro", bind.path().display());
    let (name, old_id) = env
        .run(
            "web",
            &v1,
            &[
                "-e",
                "DB_URL=postgres://db.internal/app",
                "-e",
                "APP_MODE=custom",
                "--label",
                "team=payments",
                "-p",
                &publish,
                "-v",
                &volume,
                "-v",
                &bind_mount,
                "--network",
                &net,
                "--network-alias",
                "web-alias",
                "--restart",
                "on-failure:3",
                "--hostname",
                "web-host",
            ],
        )
        .unwrap();
    wait_http(port, "version 1 mode custom", Duration::from_secs(10)).unwrap();
    docker(&["exec", &name, "sh", "-c", "echo kept > /data/state.txt"]).unwrap();

    let run = env.deploy(&["--container", &name, "--image", &v2]).unwrap();
    assert!(
        run.out.success(),
        "deploy failed\n{}\n{}",
        run.describe(),
        env.logs()
    );
    let doc = &run.doc;
    assert_eq!(doc["outcome"], "succeeded", "{doc}");
    assert_eq!(doc["server"], env.server(), "{doc}");
    assert_eq!(doc["image"], v2.as_str(), "{doc}");
    let c = run.container();
    assert_eq!(c["container"], name.as_str(), "{doc}");
    assert_eq!(c["from_image"], v1.as_str(), "{doc}");
    assert_eq!(c["to_image"], v2.as_str(), "{doc}");
    assert_eq!(c["outcome"], "succeeded", "{doc}");
    assert_eq!(c["old_id"], old_id.as_str(), "{doc}");
    assert!(
        doc["started_ms"].as_i64().is_some() && doc["finished_ms"].as_i64().is_some(),
        "{doc}"
    );
    assert!(
        doc["steps"].as_array().is_some_and(|s| !s.is_empty()),
        "{doc}"
    );

    // Progress: NDJSON lines with the documented fields, every step done.
    let id = run.id().unwrap();
    let progress = run.progress();
    assert!(
        !progress.is_empty(),
        "no progress lines\n{}",
        run.describe()
    );
    for p in progress {
        for k in [
            "deploy_id",
            "container",
            "step",
            "status",
            "at_ms",
            "server",
        ] {
            assert!(!p[k].is_null(), "progress line without {k}: {p}");
        }
        assert_eq!(p["deploy_id"], id.as_str(), "{p}");
        assert_eq!(p["server"], env.server(), "{p}");
    }
    for step in ["pull", "swap", "health", "cleanup"] {
        assert!(
            progress
                .iter()
                .any(|p| p["step"] == step && p["status"] == "done"),
            "no `{step} done` progress line\n{}",
            run.describe()
        );
    }

    // The new container.
    let new = inspect(&name).unwrap();
    let new_id = new["Id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id, "the container was not replaced");
    assert_eq!(c["new_id"], new_id.as_str(), "{doc}");
    assert!(!exists(&old_id), "the old container was not removed");
    assert_eq!(new["State"]["Running"], true, "{}", new["State"]);
    assert_eq!(new["Config"]["Image"], v2.as_str());
    assert_eq!(new["Image"], image_id(&v2).unwrap().as_str());
    let e = env_of(&new);
    for want in [
        "DB_URL=postgres://db.internal/app",
        "APP_MODE=custom",
        "APP_VERSION=2",
    ] {
        assert!(e.iter().any(|x| x == want), "env lacks {want}: {e:?}");
    }
    assert!(
        !e.iter()
            .any(|x| x == "APP_VERSION=1" || x == "APP_MODE=default"),
        "env kept the old image's defaults or lost the user's: {e:?}"
    );
    assert_eq!(label_of(&new, "team").as_deref(), Some("payments"));
    assert_eq!(label_of(&new, "app.version").as_deref(), Some("2"));
    assert_eq!(
        label_of(&new, "nextdeploy.test").as_deref(),
        Some(env.names.prefix.as_str())
    );
    let binding = &new["HostConfig"]["PortBindings"]["8080/tcp"][0];
    assert_eq!(
        binding["HostIp"], "127.0.0.1",
        "{}",
        new["HostConfig"]["PortBindings"]
    );
    assert_eq!(
        binding["HostPort"],
        port.to_string(),
        "{}",
        new["HostConfig"]["PortBindings"]
    );
    let body = wait_http(port, "version 2", Duration::from_secs(10)).unwrap();
    assert!(body.contains("version 2 mode custom"), "{body}");
    let mounts = new["Mounts"].as_array().cloned().unwrap_or_default();
    let vol_mount = mounts
        .iter()
        .find(|m| m["Destination"] == "/data")
        .unwrap_or_else(|| panic!("no /data mount: {mounts:?}"));
    assert_eq!(vol_mount["Type"], "volume", "{vol_mount}");
    assert_eq!(vol_mount["Name"], vol.as_str(), "{vol_mount}");
    let bind_m = mounts
        .iter()
        .find(|m| m["Destination"] == "/host")
        .unwrap_or_else(|| panic!("no /host mount: {mounts:?}"));
    assert_eq!(bind_m["Type"], "bind", "{bind_m}");
    assert_eq!(
        bind_m["Source"],
        bind.path().display().to_string(),
        "{bind_m}"
    );
    assert_eq!(bind_m["RW"], false, "{bind_m}");
    assert_eq!(
        docker(&["exec", &name, "cat", "/data/state.txt"]).unwrap(),
        "kept"
    );
    assert_eq!(
        docker(&["exec", &name, "cat", "/host/hello.txt"]).unwrap(),
        "from the host"
    );
    let aliases: Vec<String> = new["NetworkSettings"]["Networks"][&net]["Aliases"]
        .as_array()
        .unwrap_or_else(|| {
            panic!(
                "not on network {net}: {}",
                new["NetworkSettings"]["Networks"]
            )
        })
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert!(aliases.iter().any(|a| a == "web-alias"), "{aliases:?}");
    assert_eq!(new["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(new["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    assert_eq!(new["Config"]["Hostname"], "web-host");

    // History.
    let list = env
        .hub
        .cli_json(&["deploys", "list", "--server", env.server()])
        .unwrap();
    let first = &list[0];
    assert_eq!(first["id"], id.as_str(), "{list}");
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["server"], env.server(), "{first}");
    assert_eq!(first["container"], name.as_str(), "{first}");
    assert_eq!(first["image"], v2.as_str(), "{first}");
    assert!(
        first["actor"].as_str().is_some_and(|a| !a.is_empty()),
        "{first}"
    );
    assert!(is_rfc3339(&first["finished_at"]), "{first}");
    assert!(is_rfc3339(&first["created_at"]), "{first}");
    assert_eq!(first["outcome"]["outcome"], "succeeded", "{first}");
    let shown = env.show(&id).unwrap();
    assert_eq!(shown["status"], "succeeded", "{shown}");
    assert!(
        shown["outcome"]["steps"].as_array().is_some_and(|s| s
            .iter()
            .any(|x| x["step"] == "health" && x["status"] == "done")),
        "{shown}"
    );
}

/// One by-hand swap with the docker CLI: rename, stop, run the new image with
/// the same flags, remove the old one.
fn manual_swap(name: &str, flags: &[String], image: &str) -> Duration {
    let t = Instant::now();
    let parked = format!("{name}-manual-old");
    docker(&["rename", name, &parked]).unwrap();
    docker(&["stop", &parked]).unwrap();
    let mut a: Vec<&str> = vec!["run", "-d", "--name", name];
    a.extend(flags.iter().map(String::as_str));
    a.push(image);
    docker(&a).unwrap();
    docker(&["rm", "-f", &parked]).unwrap();
    t.elapsed()
}

#[test]
fn measure_deploy_against_the_docker_cli_and_the_swap_downtime() {
    let env = DeployEnv::start("measure").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let (mut deploy_s, mut swap_s, mut health_s, mut manual_s, mut down_ms, mut manual_down_ms) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for round in 0..3 {
        let port = free_port().unwrap();
        let flags: Vec<String> = [
            "--label",
            &env.test_label(),
            "--stop-timeout",
            "1",
            "-e",
            "APP_MODE=custom",
            "-p",
            &format!("127.0.0.1:{port}:8080"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();

        // The deploy.
        let opts: Vec<&str> = flags[4..].iter().map(String::as_str).collect();
        let (name, _) = env.run(&format!("d{round}"), &v1, &opts).unwrap();
        wait_http(port, "version 1", Duration::from_secs(10)).unwrap();
        let poller = PortPoller::start(port);
        let run = env.deploy(&["--container", &name, "--image", &v2]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let stats = poller.finish();
        assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
        assert!(http_body(port, Duration::from_secs(2))
            .unwrap()
            .contains("version 2"));
        deploy_s.push(run.out.elapsed.as_secs_f64());
        let steps: Vec<Value> = run.doc["steps"].as_array().cloned().unwrap_or_default();
        swap_s.push(step_secs(&steps, "swap").unwrap_or(f64::NAN));
        health_s.push(step_secs(&steps, "health").unwrap_or(f64::NAN));
        down_ms.push(stats.longest_gap.as_secs_f64() * 1000.0);
        println!("  deploy polls: {} ok, {} failed", stats.ok, stats.failed);
        docker(&["rm", "-f", &name]).unwrap();

        // The same by hand.
        let mname = env.names.name(&format!("m{round}"));
        let mut a: Vec<&str> = vec!["run", "-d", "--name", &mname];
        a.extend(flags.iter().map(String::as_str));
        a.push(&v1);
        docker(&a).unwrap();
        wait_http(port, "version 1", Duration::from_secs(10)).unwrap();
        let poller = PortPoller::start(port);
        let took = manual_swap(&mname, &flags, &v2);
        wait_http(port, "version 2", Duration::from_secs(10)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let stats = poller.finish();
        manual_s.push(took.as_secs_f64());
        manual_down_ms.push(stats.longest_gap.as_secs_f64() * 1000.0);
        println!("  manual polls: {} ok, {} failed", stats.ok, stats.failed);
        docker(&["rm", "-f", &mname]).unwrap();
        println!(
            "round {round}: deploy {:.2}s (swap {:.2}s, health {:.2}s), manual {:.2}s, downtime deploy {:.0}ms manual {:.0}ms",
            deploy_s[round], swap_s[round], health_s[round], manual_s[round], down_ms[round], manual_down_ms[round]
        );
    }
    let (d, h, m) = (median(&deploy_s), median(&health_s), median(&manual_s));
    println!(
        "MEASURE deploy_s={d:.2} manual_s={m:.2} downtime_ms={:.0} (median of 3; deploy includes the health step, {h:.2}s, which for an image without healthcheck is the 5 s settle; deploy minus health {:.2}s; swap step {:.2}s; manual swap downtime {:.0}ms)",
        median(&down_ms),
        d - h,
        median(&swap_s),
        median(&manual_down_ms)
    );
}
