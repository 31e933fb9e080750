#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Without `--container`, a deploy updates exactly the containers whose image
//! repository is the new image's; with none, the error lists the containers.

use nextdeploy_tests::deploy::{inspect, DeployEnv, Fixture, APP_REPO, OTHER_REPO};

#[test]
fn the_repository_form_updates_exactly_the_matching_containers() {
    let env = DeployEnv::start("match").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let other = Fixture::Other.image().unwrap();
    assert!(v1.starts_with(&format!("{APP_REPO}:")) && v2.starts_with(&format!("{APP_REPO}:")));
    let (a1, _) = env.run("app1", &v1, &[]).unwrap();
    let (a2, _) = env.run("app2", &v1, &[]).unwrap();
    let (o, o_id) = env.run("other", &other, &[]).unwrap();

    let run = env.deploy(&["--image", &v2]).unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    assert_eq!(run.doc["outcome"], "succeeded", "{}", run.doc);
    let mut updated: Vec<String> = run.doc["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["outcome"], "succeeded", "{c}");
            assert_eq!(c["from_image"], v1.as_str(), "{c}");
            c["container"].as_str().unwrap().to_string()
        })
        .collect();
    updated.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(updated, want, "{}", run.doc);
    for n in [&a1, &a2] {
        let d = inspect(n).unwrap();
        assert_eq!(d["Config"]["Image"], v2.as_str(), "{n}");
        assert_eq!(d["State"]["Running"], true, "{n}: {}", d["State"]);
    }
    let od = inspect(&o).unwrap();
    assert_eq!(
        od["Id"],
        o_id.as_str(),
        "the other repository's container was replaced"
    );
    assert_eq!(od["Config"]["Image"], other.as_str());
    assert_eq!(od["State"]["Running"], true, "{}", od["State"]);
    let list = env
        .hub
        .cli_json(&["deploys", "list", "--server", env.server()])
        .unwrap();
    assert_eq!(list[0]["status"], "succeeded", "{list}");
    assert_eq!(
        list[0]["outcome"]["containers"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );

    // No container of that repository: an error listing the containers.
    let run = env.deploy(&["--image", "nd-deploy-nothing:1.0"]).unwrap();
    assert!(!run.out.success(), "{}", run.describe());
    for n in [&a1, &a2, &o] {
        assert!(
            run.out.mentions(n),
            "the error does not list {n}\n{}",
            run.describe()
        );
    }
    assert!(run.out.mentions("--container"), "{}", run.describe());
    assert!(run.out.mentions(OTHER_REPO), "{}", run.describe());
    // Nothing changed.
    assert_eq!(inspect(&o).unwrap()["Id"], o_id.as_str());
    assert_eq!(inspect(&a1).unwrap()["Config"]["Image"], v2.as_str());
}
