#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A fleet deploy over a selector, `--max-parallel 1`, stops at the first
//! failed server: the first is updated, the second fails and rolls back, the
//! third is not touched.

use nextdeploy_tests::deploy::{deploy_as, inspect, DeployEnv, Fixture};

#[test]
fn a_fleet_deploy_stops_at_the_first_failed_server() {
    let mut env = DeployEnv::start("fleet").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    // Three agents on this one engine, each seeing only its own container.
    let mut containers = Vec::new();
    for (i, agent) in ["fl-a1", "fl-a2", "fl-a3"].iter().enumerate() {
        let scope = format!("nextdeploy.agent={}-{agent}", env.names.prefix);
        env.add_agent(agent, "role=web", &scope).unwrap();
        let mut opts = vec!["--label", scope.as_str()];
        if i == 1 {
            // The second server's container never becomes healthy, on v2 either.
            opts.extend([
                "--health-cmd",
                "false",
                "--health-interval",
                "1s",
                "--health-retries",
                "1",
            ]);
        }
        let (name, id) = env.run(&format!("web{}", i + 1), &v1, &opts).unwrap();
        containers.push((agent.to_string(), name, id));
    }

    let run = deploy_as(
        &env.hub,
        &env.hub.admin_token,
        &[
            "--selector",
            "role=web",
            "--image",
            &v2,
            "--max-parallel",
            "1",
            "--health-timeout",
            "8s",
        ],
    )
    .unwrap();
    assert!(
        !run.out.success(),
        "a fleet deploy with a failed server exited 0\n{}",
        run.describe()
    );
    let doc = &run.doc;
    assert_eq!(
        doc["updated"],
        serde_json::json!(["fl-a1"]),
        "{doc}\n{}",
        env.logs()
    );
    assert_eq!(doc["failed"], serde_json::json!(["fl-a2"]), "{doc}");
    assert_eq!(doc["untouched"], serde_json::json!(["fl-a3"]), "{doc}");
    let deploys = doc["deploys"].as_array().unwrap();
    assert_eq!(deploys.len(), 2, "{doc}");
    assert_eq!(deploys[0]["server"], "fl-a1", "{doc}");
    assert_eq!(deploys[0]["outcome"], "succeeded", "{doc}");
    assert_eq!(deploys[1]["server"], "fl-a2", "{doc}");
    assert_eq!(deploys[1]["outcome"], "rolled_back", "{doc}");
    assert_eq!(
        deploys[1]["containers"][0]["failed_step"], "health",
        "{doc}"
    );
    // Progress lines name their server; none from the untouched one.
    let servers: Vec<&str> = run
        .progress()
        .iter()
        .filter_map(|p| p["server"].as_str())
        .collect();
    assert!(
        servers.contains(&"fl-a1") && servers.contains(&"fl-a2"),
        "{servers:?}"
    );
    assert!(!servers.contains(&"fl-a3"), "{servers:?}");

    let (_, n1, id1) = &containers[0];
    let d1 = inspect(n1).unwrap();
    assert_ne!(d1["Id"], id1.as_str());
    assert_eq!(d1["Config"]["Image"], v2.as_str());
    let (_, n2, id2) = &containers[1];
    let d2 = inspect(n2).unwrap();
    assert_eq!(
        d2["Id"],
        id2.as_str(),
        "the failed server's container was not rolled back"
    );
    assert_eq!(d2["Config"]["Image"], v1.as_str());
    assert_eq!(d2["State"]["Running"], true, "{}", d2["State"]);
    let (_, n3, id3) = &containers[2];
    let d3 = inspect(n3).unwrap();
    assert_eq!(d3["Id"], id3.as_str(), "the third server was touched");
    assert_eq!(d3["Config"]["Image"], v1.as_str());

    // History: one record per touched server, none for the third.
    let list = env.hub.cli_json(&["deploys", "list"]).unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows.iter()
            .any(|r| r["server"] == "fl-a1" && r["status"] == "succeeded"),
        "{list}"
    );
    assert!(
        rows.iter()
            .any(|r| r["server"] == "fl-a2" && r["status"] == "rolled_back"),
        "{list}"
    );
    let none = env
        .hub
        .cli_json(&["deploys", "list", "--server", "fl-a3"])
        .unwrap();
    assert_eq!(none, serde_json::json!([]), "{none}");
}
