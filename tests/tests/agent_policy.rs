#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The agent's own `[policy]` (issue 21): the agent refuses what it forbids
//! even when the hub forwards it (a hub started with
//! NEXTDEPLOY_HUB_POLICY_PRECHECK=off), naming the rule; a normal hub
//! refuses the same requests early from the agent's hello; allowed requests
//! are still served; `agent info` and `agent list` show the policy. (Exec's
//! rules are unit-tested in shared and agent until exec exists.)

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::{json, wait_until, ws_connect, HubOpts};
use serde_json::Value;

/// The whole policy as the hello reports it.
fn policy(read_only: bool, lifecycle: bool, images: &[&str]) -> Value {
    json!({"read_only": read_only, "exec": true, "exec_allow_root": true,
           "deploy_images": images, "lifecycle": lifecycle})
}

/// Replace the agent's `[policy]` with `body` (TOML lines), restart it, and
/// wait until the hub lists the new connection's policy.
fn set_policy(env: &mut DockerEnv, body: &str, want: &Value) {
    let text = std::fs::read_to_string(&env.agent.config).unwrap();
    let base = text
        .split("\n[policy]")
        .next()
        .unwrap()
        .trim_end()
        .to_string();
    std::fs::write(&env.agent.config, format!("{base}\n\n[policy]\n{body}\n")).unwrap();
    env.agent.start().unwrap();
    let (hub, name) = (&env.hub, env.agent.name.clone());
    wait_until(
        "the hub to list the agent's new policy",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let e = hub.agent_entry(&name)?;
            Ok(e.filter(|e| e["online"] == true && &e["policy"] == want))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", env.logs()));
}

/// `action` refused with `forbidden_by_policy`; the message.
fn refused(env: &DockerEnv, action: &str, payload: Value) -> String {
    let (code, msg) = env.ws_error(action, payload).unwrap();
    assert_eq!(code, "forbidden_by_policy", "{action}: {msg}");
    msg
}

/// Refused by the agent itself: its own words, which start with the rule.
fn refused_by_agent(env: &DockerEnv, action: &str, payload: Value, rule: &str) {
    let msg = refused(env, action, payload);
    assert!(msg.starts_with(&format!("{rule}: ")), "{action}: {msg}");
}

/// Refused by the hub from the hello: it names the agent, then the rule.
fn refused_by_hub(env: &DockerEnv, action: &str, payload: Value, rule: &str) {
    let msg = refused(env, action, payload);
    let want = format!("agent {} refuses it: {rule}: ", env.server());
    assert!(msg.starts_with(&want), "{action}: {msg}");
}

/// A WebSocket request's replies up to its terminal one (result, error, end).
fn ws_all(env: &DockerEnv, req: Value) -> Vec<Value> {
    let fanout = req.get("selector").is_some();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ws = ws_connect(&env.hub, Some(&env.hub.admin_token), None)
            .await
            .unwrap();
        ws.send_json(&req).await.unwrap();
        let mut all = Vec::new();
        loop {
            let v = ws.recv_json(Duration::from_secs(60)).await.unwrap();
            if v["id"] != req["id"] {
                continue;
            }
            // A fan-out's parts (tagged with `server`) end with one `end`.
            let kind = v["type"].as_str().unwrap_or("");
            let done = kind == "end" || (!fanout && ["result", "error"].contains(&kind));
            all.push(v);
            if done {
                break all;
            }
        }
    })
}

/// The final reply of a deploy or rollback through the WebSocket API.
fn deploy_final(env: &DockerEnv, action: &str, payload: Value) -> Value {
    let req = json!({"id": 9, "action": action, "server": env.server(), "payload": payload});
    ws_all(env, req).pop().unwrap()
}

/// The agent's log lines saying it refused something.
fn agent_refusals(env: &DockerEnv) -> usize {
    env.agent.log_text().matches("refused by policy").count()
}

#[test]
fn the_agent_refuses_what_its_policy_forbids_even_when_the_hub_forwards_it() {
    let off = HubOpts {
        env: vec![("NEXTDEPLOY_HUB_POLICY_PRECHECK".into(), "off".into())],
        ..HubOpts::default()
    };
    let mut env = DockerEnv::start_with("policy-agent", off, &[]).unwrap();
    let c = env.run("web", &[], &["idle"]).unwrap();
    let started = c.inspect("{{.State.StartedAt}}").unwrap();
    let web = || json!({"container": c.name});

    // read_only: every change refused by the agent, reading still served.
    set_policy(&mut env, "read_only = true", &policy(true, true, &[]));
    for action in ["start", "stop", "restart", "kill", "rm"] {
        refused_by_agent(&env, action, web(), "policy.read_only");
    }
    refused_by_agent(
        &env,
        "pull",
        json!({"image": env.image}),
        "policy.read_only",
    );
    for (action, payload) in [
        ("deploy", json!({"image": env.image, "container": c.name})),
        ("rollback", web()),
    ] {
        // The hub records the deploy and forwards it; the agent refuses it.
        let last = deploy_final(&env, action, payload);
        assert_eq!(last["type"], "result", "{action}: {last}");
        assert_eq!(last["data"]["outcome"], "failed", "{action}: {last}");
        assert_eq!(
            last["data"]["code"], "forbidden_by_policy",
            "{action}: {last}"
        );
        let err = last["data"]["error"].as_str().unwrap();
        assert!(err.starts_with("policy.read_only: "), "{action}: {err}");
    }
    assert!(agent_refusals(&env) >= 8, "{}", env.agent.log_tail());
    assert_eq!(c.state().unwrap(), "running");
    assert_eq!(c.inspect("{{.State.StartedAt}}").unwrap(), started);
    for (action, payload) in [("ps", json!({})), ("inspect", web()), ("ping", json!({}))] {
        let r = env.ws(action, payload).unwrap();
        assert_eq!(r["type"], "result", "{action}: {r}");
    }
    // `agent info` shows the policy, in JSON and in the table.
    let info = env.agent_json("info", &[]).unwrap();
    assert_eq!(info["policy"], policy(true, true, &[]), "{info}");
    let table = env.agent_cli("info", &[]).unwrap().ok().unwrap();
    assert!(table.stdout.contains("read_only"), "{}", table.stdout);
    // The CLI exits 4 (forbidden) and prints the agent's words.
    let stop = env.agent_cli("stop", &["--container", &c.name]).unwrap();
    assert_eq!(stop.status.code(), Some(4), "{}", stop.describe());
    assert!(
        stop.stderr.contains("policy.read_only"),
        "{}",
        stop.describe()
    );

    // lifecycle = false and allowed images: lifecycle refused, images
    // outside the patterns refused, an allowed image deployed.
    let repo = env.image.split(':').next().unwrap().to_string();
    let pattern = format!("{repo}:*");
    let body = format!("lifecycle = false\ndeploy_images = [{pattern:?}]");
    set_policy(&mut env, &body, &policy(false, false, &[&pattern]));
    for action in ["start", "stop", "restart", "kill", "rm"] {
        refused_by_agent(&env, action, web(), "policy.lifecycle");
    }
    let elsewhere = "registry.example.com/other/app:1";
    refused_by_agent(
        &env,
        "pull",
        json!({"image": elsewhere}),
        "policy.deploy_images",
    );
    let last = deploy_final(
        &env,
        "deploy",
        json!({"image": elsewhere, "container": c.name}),
    );
    assert_eq!(last["data"]["code"], "forbidden_by_policy", "{last}");
    let err = last["data"]["error"].as_str().unwrap();
    assert!(err.starts_with("policy.deploy_images: "), "{err}");
    assert!(err.contains(elsewhere), "{err}");
    let ok = deploy_final(
        &env,
        "deploy",
        json!({"image": env.image, "container": c.name, "settle_s": 1, "pull": "never"}),
    );
    assert_eq!(ok["type"], "result", "{ok}\n{}", env.logs());
    assert_eq!(ok["data"]["outcome"], "succeeded", "{ok}\n{}", env.logs());
}

#[test]
fn the_hub_refuses_early_from_the_hello_and_serves_the_rest() {
    let mut env = DockerEnv::start("policy-hub", &[]).unwrap();
    let c = env.run("web", &[], &["idle"]).unwrap();
    let web = || json!({"container": c.name});

    set_policy(&mut env, "read_only = true", &policy(true, true, &[]));
    let before = agent_refusals(&env);
    for action in ["start", "stop", "restart", "kill", "rm"] {
        refused_by_hub(&env, action, web(), "policy.read_only");
    }
    refused_by_hub(
        &env,
        "pull",
        json!({"image": env.image}),
        "policy.read_only",
    );
    refused_by_hub(&env, "rollback", web(), "policy.read_only");
    let (code, msg) = env
        .ws_error("deploy", json!({"image": env.image, "container": c.name}))
        .unwrap();
    assert_eq!(code, "forbidden_by_policy", "{msg}");
    assert!(
        msg.starts_with("refusing the deploy before any change: "),
        "{msg}"
    );
    assert!(msg.contains("policy.read_only"), "{msg}");
    // Nothing reached the agent, and no deploy was recorded.
    assert_eq!(agent_refusals(&env), before, "{}", env.agent.log_tail());
    let deploys = env.hub.cli_json(&["deploys", "list"]).unwrap();
    assert_eq!(deploys.as_array().map(Vec::len), Some(0), "{deploys}");
    // A fan-out names the refusing agent and still ends.
    let sel = format!("test={}", "policy-hub");
    let replies = ws_all(
        &env,
        json!({"id": 3, "action": "stop", "selector": sel, "payload": web()}),
    );
    let first = &replies[0];
    assert_eq!(first["type"], "error", "{replies:?}");
    assert_eq!(first["server"], env.server(), "{replies:?}");
    assert_eq!(first["data"]["code"], "forbidden_by_policy", "{replies:?}");
    assert_eq!(replies.last().unwrap()["type"], "end", "{replies:?}");
    // Reading is served; the list shows the policy.
    assert_eq!(env.ws("ps", json!({})).unwrap()["type"], "result");
    let list = env.hub.cli_json(&["agent", "list"]).unwrap();
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == env.server())
        .unwrap();
    assert_eq!(me["policy"], policy(true, true, &[]), "{list}");

    // lifecycle = false: lifecycle refused, a deploy of an image outside the
    // patterns refused before any change, an allowed pull served.
    let repo = env.image.split(':').next().unwrap().to_string();
    let pattern = format!("{repo}:*");
    let body = format!("lifecycle = false\ndeploy_images = [{pattern:?}]");
    set_policy(&mut env, &body, &policy(false, false, &[&pattern]));
    refused_by_hub(&env, "stop", web(), "policy.lifecycle");
    let elsewhere = json!({"image": "registry.example.com/other/app:1"});
    refused_by_hub(&env, "pull", elsewhere, "policy.deploy_images");
    let out = env
        .agent_cli(
            "deploy",
            &[
                "--image",
                "registry.example.com/other/app:1",
                "--container",
                &c.name,
            ],
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", out.describe());
    assert!(
        out.stderr.contains("policy.deploy_images"),
        "{}",
        out.describe()
    );
    let stop = env.agent_cli("stop", &["--container", &c.name]).unwrap();
    assert_eq!(stop.status.code(), Some(4), "{}", stop.describe());
    assert_eq!(c.state().unwrap(), "running");
    // Without a policy everything is served again.
    set_policy(&mut env, "", &policy(false, true, &[]));
    let r = env
        .ws("stop", json!({"container": c.name, "timeout": 5}))
        .unwrap();
    assert_eq!(r["type"], "result", "{r}");
}
