#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `nextdeploy agent exec -it` as a person uses it (issue 21): in a tmux
//! pane, keys sent with `send-keys`, the screen read with `capture-pane`.
//! The command sees a TTY, follows the window's size, answers an
//! interactive `read`, Ctrl-C interrupts what runs inside; the CLI exits
//! with the shell's code and leaves the terminal as it found it; the hub's
//! recording plays back with `asciinema cat`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::{wait_until, TempDir};

/// A tmux session running one command; killed on drop.
struct Pane {
    name: String,
}

impl Pane {
    fn start(name: &str, script: &Path) -> Pane {
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", name, "-x", "100", "-y", "30"])
            .arg(format!("sh {}", script.display()))
            .status()
            .unwrap();
        assert!(ok.success(), "tmux new-session failed");
        Pane { name: name.into() }
    }

    fn tmux(&self, args: &[&str]) {
        let mut a = vec![args[0], "-t", self.name.as_str()];
        a.extend(&args[1..]);
        assert!(
            Command::new("tmux").args(&a).status().unwrap().success(),
            "tmux {a:?}"
        );
    }

    fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys"];
        a.extend(keys);
        self.tmux(&a);
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until the screen shows `needle`.
    fn wait_for(&self, needle: &str) {
        let what = format!("{needle:?} on the screen");
        let r = wait_until(
            &what,
            Duration::from_secs(15),
            Duration::from_millis(50),
            || Ok(self.screen().contains(needle).then_some(())),
        );
        if let Err(e) = r {
            panic!("{e:#}\n--- screen ---\n{}", self.screen());
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// A script that records the terminal's settings, runs the CLI's exec,
/// writes its exit code, records the settings again, and stays.
fn wrapper(env: &DockerEnv, dir: &Path, container: &str) -> PathBuf {
    let cmd = env.hub.cli_command(&env.hub.admin_token).unwrap();
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s += &format!("export {}='{}'\n", k.to_string_lossy(), v.to_string_lossy());
        }
    }
    let d = dir.display();
    s += &format!("stty -a > {d}/before\n");
    s += &format!(
        "'{}' agent exec --server {} --container {container} -it -- sh\n",
        cmd.get_program().to_string_lossy(),
        env.server()
    );
    s += &format!("echo \"EXIT=$?\" > {d}/exit.tmp && mv {d}/exit.tmp {d}/exit\n");
    s += &format!("stty -a > {d}/after\nsleep 120\n");
    let path = dir.join("run.sh");
    std::fs::write(&path, s).unwrap();
    path
}

#[test]
fn a_person_at_a_terminal_gets_a_shell_in_the_container() {
    let env = DockerEnv::start("exec-tty", &[]).unwrap();
    let c = env.run("box", &[], &["idle"]).unwrap();
    let dir = TempDir::new("exec-tty").unwrap();
    let pane = Pane::start(
        &format!("nd-{}", c.name),
        &wrapper(&env, dir.path(), &c.name),
    );
    pane.wait_for("# ");

    pane.keys(&["tty", "Enter"]);
    pane.wait_for("/dev/pts/");
    pane.keys(&["stty size", "Enter"]);
    pane.wait_for("30 100");
    pane.tmux(&["resize-window", "-x", "120", "-y", "40"]);
    std::thread::sleep(Duration::from_millis(500));
    pane.keys(&["clear; stty size", "Enter"]);
    pane.wait_for("40 120");

    pane.keys(&["read -p 'name? ' n; echo hello-$n", "Enter"]);
    pane.wait_for("name? ");
    pane.keys(&["world", "Enter"]);
    pane.wait_for("hello-world");

    // Ctrl-C goes into the container: the sleep is interrupted at once.
    pane.keys(&["sleep 100; echo after-sleep", "Enter"]);
    std::thread::sleep(Duration::from_millis(700));
    pane.keys(&["C-c"]);
    pane.keys(&["echo done-$((40+2))", "Enter"]);
    pane.wait_for("done-42");
    let screen = pane.screen();
    assert!(
        !screen.lines().any(|l| l.trim() == "after-sleep"),
        "{screen}"
    );

    pane.keys(&["exit 7", "Enter"]);
    let exit = dir.path().join("exit");
    wait_until(
        "the CLI to exit",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || Ok(exit.exists().then_some(())),
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(&exit).unwrap().trim(), "EXIT=7");
    let settings = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    // Same settings except the size, which the test changed.
    let strip = |s: String| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(
        strip(settings("before")),
        strip(settings("after")),
        "the terminal was not restored"
    );

    // The recording: output and the resize, no input; asciinema plays it.
    let sessions = env.hub.cli_json(&["exec-sessions", "list"]).unwrap();
    let s = &sessions[0];
    assert_eq!(
        (s["tty"].as_bool(), s["exit_code"].as_i64()),
        (Some(true), Some(7)),
        "{s}"
    );
    assert!(s["recording_bytes"].as_u64().unwrap() > 0, "{s}");
    let id = s["id"].as_str().unwrap();
    let out = env
        .hub
        .cli(&["exec-sessions", "play", id, "--cast"])
        .unwrap()
        .ok()
        .unwrap();
    let cast = out.stdout.clone();
    assert!(
        cast.starts_with("{\"command\":\"sh\""),
        "{}",
        &cast[..cast.len().min(300)]
    );
    assert!(
        cast.contains("\"r\",\"120x40\""),
        "no resize event in the recording"
    );
    assert!(
        !cast.contains("\"i\","),
        "input was recorded without --exec-record-input"
    );
    let file = dir.path().join("session.cast");
    std::fs::write(&file, &cast).unwrap();
    // asciinema reads /dev/tty: `script` gives it one.
    let cat = format!("asciinema cat {}", file.display());
    let played = Command::new("script")
        .args(["-qec", &cat, "/dev/null"])
        .output()
        .unwrap();
    let played = String::from_utf8_lossy(&played.stdout);
    for needle in ["/dev/pts/", "hello-world", "done-42"] {
        assert!(
            played.contains(needle),
            "asciinema cat lacks {needle:?}:\n{played}"
        );
    }
}
