#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `agent rm`, `agent images` and `agent pull` (the three actions added on
//! the typed protocol): what docker does, through hub and tunnel, with roles.

use nextdeploy_tests::deploy::*;
use nextdeploy_tests::docker::*;
use nextdeploy_tests::json;

#[test]
fn rm_images_and_pull_do_what_docker_does() {
    let env = DockerEnv::start("images", &[]).unwrap();
    let running = env.run("keep", &[], &["idle"]).unwrap();
    let stopped = env.create("gone", &[], &["idle"]).unwrap();

    // rm: a stopped container goes; a running one only with -f.
    let v = env.agent_json("rm", &[&stopped.name]).unwrap();
    assert_eq!(v["removed"], json!(true), "{v}");
    assert!(docker(&["inspect", &stopped.name]).is_err(), "still there");
    let out = env
        .agent_cli("rm", &[&running.name])
        .unwrap()
        .failed()
        .unwrap();
    assert!(
        out.stderr.to_lowercase().contains("running"),
        "{}",
        out.describe()
    );
    assert_eq!(running.state().unwrap(), "running");
    // A viewer may not remove.
    let viewer = env
        .hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "v"])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = env
        .hub
        .cli_as(
            &viewer,
            &["agent", "rm", "--server", env.server(), "-f", &running.name],
        )
        .unwrap()
        .failed()
        .unwrap();
    assert!(out.stderr.contains("operator"), "{}", out.describe());
    env.agent_json("rm", &["-f", &running.name]).unwrap();
    assert!(
        docker(&["inspect", &running.name]).is_err(),
        "-f did not remove it"
    );

    // images: the fixture image listed with docker's id, viewers allowed.
    let image = env.image.clone();
    let want_id = docker(&["image", "inspect", "-f", "{{.Id}}", &image]).unwrap();
    let rows = env.agent_json("images", &[]).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == json!(want_id.trim()))
        .unwrap_or_else(|| panic!("{image} ({want_id}) not in {rows}"));
    assert!(
        row["repo_tags"].as_array().unwrap().contains(&json!(image)),
        "{row}"
    );
    let out = env
        .hub
        .cli_as(
            &viewer,
            &["agent", "images", "--server", env.server(), "-q"],
        )
        .unwrap()
        .ok()
        .unwrap();
    let short = want_id.trim().trim_start_matches("sha256:")[..12].to_string();
    assert!(out.stdout.lines().any(|l| l == short), "{}", out.describe());

    // pull: from a real registry on loopback, with progress, then the id.
    let reg = Registry::start().unwrap();
    let pushed = reg.push(&image, "nd-pull-test:v1").unwrap();
    docker(&["rmi", &pushed]).unwrap();
    let out = env.agent_cli("pull", &[&pushed]).unwrap().ok().unwrap();
    assert!(
        out.stdout.contains(&format!("pulled {pushed}")),
        "{}",
        out.describe()
    );
    let local = docker(&["image", "inspect", "-f", "{{.Id}}", &pushed]).unwrap();
    assert_eq!(local.trim(), want_id.trim());
    // An image nobody serves: a clear error, non-zero.
    let out = env
        .agent_cli("pull", &[&format!("{}/nd-none:v9", reg.addr())])
        .unwrap()
        .failed()
        .unwrap();
    assert!(out.stderr.contains("nd-none"), "{}", out.describe());
    let _ = docker(&["rmi", &pushed]);
}
