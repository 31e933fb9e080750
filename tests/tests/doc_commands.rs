#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every command line of README.md, deploy/README.md and docs/ runs as
//! written, in the order the docs give them, on a host of its own (a network
//! namespace where `bastion` is the hub, `/etc/nextdeploy` and
//! `/var/lib/nextdeploy` are temp dirs, ports as documented: see
//! `nextdeploy_tests::sandbox`). A synopsis line runs once bare and once per
//! option it shows (`nextdeploy_tests::doclines`). The placeholders (`<admin
//! token>`, `ID`, `N`, ...) take the values the tour produced; the images and
//! containers the lines name (`myapp:2.1`, `web`, `worker`, `old-web`) live
//! in a private dockerd whose registry mirror (Debian's docker-registry in
//! the namespace) serves `myapp:2.1`, so `agent pull` and `--pull always`
//! really pull.
//!
//! A line that cannot run here is in [`COVERED_ELSEWHERE`] with the test that
//! runs it; a new doc line that is neither runnable nor listed fails the test.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nextdeploy_tests::docker::{fixture_image, require_docker, MirroredDockerd};
use nextdeploy_tests::doclines::{doc_lines, variants, DocLine};
use nextdeploy_tests::sandbox::Sandbox;
use nextdeploy_tests::*;

/// Lines run elsewhere, by the start of their text, with where.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    (
        "head -c 32 /dev/urandom | base64 > /etc/nextdeploy/cluster.secret",
        "tests/tests/cluster.rs writes the cluster secret (0600) its hubs share; \
         hub/src/cluster/secret.rs refuses a file others may read or a short secret",
    ),
    (
        "nextdeploy hub --store sqlite://",
        "tests/tests/cluster.rs starts three hubs on one store file with one cluster secret",
    ),
    (
        "nextdeploy-agent enroll --hub hub1:2222,hub2:2222",
        "tests/tests/cluster.rs enrols an agent with a list of hubs (a dead address first) \
         and sees it move to the next hub of its list",
    ),
    (
        "cargo build --release --workspace && ./target/release/nextdeploy hub --local-agent",
        "tests/tests/local_agent.rs runs `nextdeploy hub --local-agent` (the debug build)",
    ),
    ("scripts/test.sh", ".ci/run runs it: it is the test command"),
    (
        "cargo run --release -p nextdeploy-bench",
        "the benchmark, run by hand; its figures are in docs/benchmarks.md",
    ),
    (
        "deploy/install-",
        "tests/tests/systemd_boot.rs runs the install scripts under a booted systemd",
    ),
    (
        "nextdeploy agent exec --server=prod-1 --container=web -it",
        "tests/tests/exec_tty.rs runs `agent exec -it -- sh` in tmux, as a person at a terminal",
    ),
    (
        "echo 'select 1' | nextdeploy agent exec",
        "tests/tests/exec.rs pipes stdin into `agent exec -i` (10 MB into `wc -c`, bytes through `cat`)",
    ),
    (
        "nextdeploy exec-sessions play",
        "tests/tests/exec_tty.rs records a TTY session and plays it (`--cast` into `asciinema cat`)",
    ),
    (
        "nextdeploy alert ",
        "tests/tests/alerts.rs and tests/tests/alert_rules.rs run the alert commands \
         against a webhook receiver on loopback (`--slack` only in a unit test: it needs \
         hooks.slack.com); tests/tests/alert_channels.rs adds a channel of every other kind \
         (`--discord`, `--teams`, `--ntfy`, `--gotify`, `--pagerduty` and `--pushover` with \
         `--url`, `--email` with `--smtp-user`/`--smtp-password-file`/`--from`/`--smtp-tls`, \
         `--min-severity`) pointed at receivers and an SMTP server on loopback",
    ),
    (
        "nextdeploy hub migrate --from",
        "tests/tests/store_migrate.rs migrates a hub's SQLite store (agent, history, deploy) \
         into PostgreSQL started by the test",
    ),
    (
        "nextdeploy hub --store postgres://",
        "tests/tests/store_migrate.rs starts the hub on the migrated PostgreSQL store; the agent \
         reconnects",
    ),
    (
        "nextdeploy hub --store 'postgres://",
        "tests/tests/store_postgres_tls.rs starts the hub on a PostgreSQL with TLS turned on, \
         `sslmode=require&sslrootcert=` its CA, and sees it refused without that CA",
    ),
    (
        "nextdeploy agent install",
        "tests/tests/install.rs pushes an agent to a real sshd (rooted in a temp prefix)",
    ),
    (
        "TOKEN=$(cat /var/lib/nextdeploy/initial-admin-token)",
        "tests/tests/docs.rs runs the websocat example of docs/protocol.md",
    ),
    (
        "SSL_CERT_FILE=/var/lib/nextdeploy/api-cert.pem websocat ",
        "tests/tests/docs.rs runs the websocat example of docs/protocol.md",
    ),
];

/// What some lines must print (stdout), by the start of the command.
const EXPECT: &[(&str, &str)] = &[
    ("nextdeploy agent list", "prod-1"),
    ("nextdeploy agent ps --server=prod-1 -q", ""),
    ("nextdeploy agent ps --server=prod-1 --filter", ""),
    ("nextdeploy agent ps", "web"),
    ("nextdeploy agent logs --server=prod-1 web --since", "tick"),
    ("nextdeploy agent logs --server=prod-1 web -n", "tick"),
    ("nextdeploy agent inspect --server=prod-1 web", "myapp:2.1"),
    ("nextdeploy agent images --server=prod-1 -q", ""),
    ("nextdeploy agent images", "myapp"),
    ("nextdeploy agent info", "docker:"),
    ("nextdeploy agent status", "web"),
    ("nextdeploy deploys list", "myapp:2.1"),
    ("nextdeploy token list", "grafana"),
];

/// Bound for one documented command (a deploy waits for health).
const LINE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a following command (`logs -f`, `events`, streaming `stats`)
/// runs before the tour stops it: it must not have failed by then.
const FOLLOW_WINDOW: Duration = Duration::from_secs(3);
/// Bound for the hub and the agent to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The state of the tour: the sandbox, its daemons, the values lines produce
/// (fields drop in order: the daemons before the sandbox they run in).
struct Tour {
    daemons: Vec<Proc>,
    dockerd: MirroredDockerd,
    admin_token: String,
    api_pin: String,
    join_token: String,
    restores: u32,
    failures: Vec<String>,
    log: PathBuf,
    home: TempDir,
    work: TempDir,
    sb: Sandbox,
}

impl Tour {
    /// The sandbox and its dockerd, with `myapp:2.1` (the fixture image) on
    /// the mirror, `web` running (printing ticks), `worker` and `old-web`
    /// created.
    fn new() -> Result<Tour> {
        let sb = Sandbox::new(
            &[("bastion", "127.0.0.1")],
            &["203.0.113.7/32"],
            &["/etc/nextdeploy", "/var/lib/nextdeploy"],
        )?;
        let dockerd = MirroredDockerd::start_in(&sb)?;
        dockerd.publish(&fixture_image()?, "myapp:2.1")?;
        let net = ["--network", "none"];
        // `tick` prints a line every 300 ms (for the logs lines); its shell
        // ignores SIGTERM, so a short stop timeout keeps stops and swaps quick.
        let web = ["run", "-d", "--name", "web", "--stop-timeout", "2"];
        dockerd
            .docker(&[&web[..], &net, &["myapp:2.1", "tick"]].concat())?
            .ok()?;
        for name in ["worker", "old-web"] {
            let create = ["create", "--name", name];
            dockerd
                .docker(&[&create[..], &net, &["myapp:2.1"]].concat())?
                .ok()?;
        }
        let work = TempDir::new("doc-tour")?;
        Ok(Tour {
            daemons: Vec::new(),
            dockerd,
            admin_token: String::new(),
            api_pin: String::new(),
            join_token: String::new(),
            restores: 0,
            failures: Vec::new(),
            log: work.path().join("tour.log"),
            home: TempDir::new("doc-tour-home")?,
            work,
            sb,
        })
    }

    /// `docker -H <the tour's dockerd> args`.
    fn docker(&self, args: &[&str]) -> Result<Output> {
        self.dockerd.docker(args)
    }

    /// `script` in the sandbox, as a user's shell would run it.
    fn shell(&self, script: &str) -> Command {
        let mut cmd = self.sb.shell(script, self.work.path());
        let path = format!(
            "{}:{}",
            target_dir().join("debug").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env("HOME", self.home.path())
            .env("DOCKER_HOST", &self.dockerd.host)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("NEXTDEPLOY_HUB")
            .env_remove("NEXTDEPLOY_TOKEN");
        cmd
    }

    /// A command of the tour's own (not a doc line), as the logged-in user.
    fn own(&self, script: &str) -> Result<Output> {
        run_bounded(self.shell(script), LINE_TIMEOUT)?.ok()
    }
}

fn covered_elsewhere(text: &str) -> Option<&'static str> {
    COVERED_ELSEWHERE
        .iter()
        .find(|(start, _)| text.starts_with(start))
        .map(|(_, why)| *why)
}

/// A long-running line: the hub itself or the agent's `run`.
fn is_daemon(cmd: &str) -> bool {
    let w: Vec<&str> = cmd.split_whitespace().collect();
    (w.len() > 2 && w[0] == "nextdeploy" && w[1] == "hub" && w[2].starts_with("--"))
        || w[..] == ["nextdeploy-agent", "run"]
}

/// A line that follows a stream until interrupted.
fn follows(cmd: &str) -> bool {
    let w: Vec<&str> = cmd.split_whitespace().collect();
    w.contains(&"-f")
        || w.contains(&"--follow")
        || w.get(2) == Some(&"events")
        || (w.get(2) == Some(&"stats") && !w.contains(&"--no-stream"))
}

/// Lines that end what later lines need: run after all others.
fn deferred(cmd: &str) -> bool {
    cmd.starts_with("nextdeploy agent revoke ")
}

impl Tour {
    /// Values the docs leave to the reader: the tour's own.
    fn fill(&mut self, cmd: &str) -> Result<String> {
        let mut words = Vec::new();
        for w in cmd.split_whitespace() {
            let v = match w {
                "N" => "5".to_string(),
                "S" => "1".to_string(),
                "SIG" => "TERM".to_string(),
                "T" => nextdeploy_shared::time::rfc3339(nextdeploy_shared::time::now_unix()),
                "PATH" => agent_bin()?.display().to_string(),
                "ID" => self.id_for(cmd)?,
                "DIR" if cmd.starts_with("nextdeploy hub restore") => {
                    self.restores += 1;
                    let d = self.work.path().join(format!("restored-{}", self.restores));
                    fs::create_dir_all(&d)?;
                    d.display().to_string()
                }
                "DIR" => "/var/lib/nextdeploy".to_string(),
                _ => w.to_string(),
            };
            words.push(v);
        }
        Ok(words.join(" "))
    }

    /// What `ID` stands for in `cmd`: made by the tour where the line ends it.
    fn id_for(&self, cmd: &str) -> Result<String> {
        let (list, make) = if cmd.starts_with("nextdeploy token revoke") {
            (
                "token list",
                "token create --role viewer --name doc-tour-revoke --ttl 1h",
            )
        } else if cmd.starts_with("nextdeploy join-token delete") {
            (
                "join-token list",
                "join-token create --name doc-tour-unused --ttl 1h",
            )
        } else if cmd.starts_with("nextdeploy deploys show") {
            ("deploys list", "")
        } else if cmd.starts_with("nextdeploy exec-sessions show") {
            ("exec-sessions list", "")
        } else {
            bail!("no value for ID in `{cmd}`")
        };
        if !make.is_empty() {
            self.own(&format!("nextdeploy {make}"))?;
        }
        let out = self.own(&format!("nextdeploy {list} -o json"))?.json()?;
        let rows = out.as_array().cloned().unwrap_or_default();
        let row = rows
            .iter()
            .find(|r| make.is_empty() || r.to_string().contains("doc-tour-"))
            .with_context(|| format!("no row for ID in `nextdeploy {list}`: {out}"))?;
        Ok(row["id"].as_str().context("row without id")?.to_string())
    }

    /// Set up what the next line acts on.
    fn before(&self, cmd: &str) -> Result<()> {
        if cmd.starts_with("nextdeploy agent rm ") {
            let _ = self.docker(&["rm", "-f", "old-web"])?;
            self.docker(&[
                "create",
                "--name",
                "old-web",
                "--network",
                "none",
                "myapp:2.1",
            ])?
            .ok()?;
        } else if cmd.starts_with("nextdeploy hub backup") {
            let _ = fs::remove_file(self.work.path().join("hub.tar"));
        } else if cmd.starts_with("nextdeploy agent ") && !cmd.contains(" start ") {
            // `web` runs for every line but the one that starts it.
            let _ = self.docker(&["start", "web"])?;
        }
        Ok(())
    }

    /// Start a daemon line and wait until it serves.
    fn start_daemon(&mut self, cmd: &str) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let p = Proc::spawn_logged(self.shell(&format!("exec {cmd}")), &self.log, cmd, Some(tx))?;
        self.daemons.push(p);
        if cmd.starts_with("nextdeploy hub") {
            let start = Instant::now();
            loop {
                let left = START_TIMEOUT.saturating_sub(start.elapsed());
                match rx.recv_timeout(left) {
                    Ok(line) if line.contains("HTTP listening on") => break,
                    Ok(line) if line.contains("API certificate pin: ") => {
                        self.api_pin = line.split_whitespace().last().unwrap_or_default().into();
                    }
                    Ok(_) => {}
                    Err(_) => bail!("`{cmd}` did not start\n{}", tail(&self.log, 30)),
                }
            }
            let token = self
                .sb
                .host_path("/var/lib/nextdeploy")?
                .join("initial-admin-token");
            self.admin_token = wait_until(
                "the initial admin token",
                START_TIMEOUT,
                Duration::from_millis(50),
                || {
                    Ok(fs::read_to_string(&token)
                        .ok()
                        .filter(|t| !t.trim().is_empty()))
                },
            )?
            .trim()
            .to_string();
            return Ok(());
        }
        wait_until_ok(
            "prod-1 online",
            START_TIMEOUT,
            Duration::from_millis(200),
            || {
                let out = self.own("nextdeploy agent list -o json")?.json()?;
                Ok(out.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|r| r["name"] == "prod-1" && r["online"] == true)
                }))
            },
        )
        .with_context(|| tail(&self.log, 30))
    }

    /// Run one concrete line; a failure is recorded, not fatal.
    fn run_line(&mut self, doc: &DocLine, cmd: &str) -> Result<()> {
        let cmd = self.fill(cmd)?;
        self.before(&cmd)?;
        let start = Instant::now();
        let (failure, out) = if follows(&cmd) {
            (self.follow(&cmd)?, None)
        } else {
            let out = run_bounded(self.shell(&cmd), LINE_TIMEOUT)?;
            let want = EXPECT.iter().find(|(start, _)| cmd.starts_with(start));
            let failure = if !out.success() {
                Some(out.describe())
            } else {
                want.filter(|(_, w)| !out.stdout.contains(w))
                    .map(|(_, w)| format!("printed no `{w}`: {}", out.describe()))
            };
            (failure, Some(out))
        };
        eprintln!(
            "{:>6} ms  {}:{}  {cmd}",
            start.elapsed().as_millis(),
            doc.file,
            doc.line
        );
        if let Some(f) = failure {
            self.failures
                .push(format!("{}:{}: `{cmd}`: {f}", doc.file, doc.line));
        }
        if cmd.starts_with("nextdeploy join-token create --name prod-1") {
            let out = out.context("join-token create is not a following line")?;
            let text = format!("{}{}", out.stdout, out.stderr);
            self.join_token = text
                .split_whitespace()
                .find(|w| w.starts_with("ndj_"))
                .context("join-token create printed no ndj_ token")?
                .to_string();
        }
        Ok(())
    }

    /// A following line: it must still run (or have ended well) after the
    /// window; then it is interrupted as a user would. The failure, if any.
    fn follow(&self, cmd: &str) -> Result<Option<String>> {
        let mut c = self.shell(&format!("exec {cmd}"));
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut p = Proc::spawn(c)?;
        let ended = p.wait_timeout(FOLLOW_WINDOW)?;
        if ended.is_none() {
            p.signal("INT")?;
            if p.wait_timeout(Duration::from_secs(5))?.is_none() {
                return Ok(Some("did not end within 5 s of Ctrl-C".into()));
            }
        }
        let mut err = String::new();
        if let Some(mut e) = p.take_stderr() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        Ok(match ended {
            Some(st) if !st.success() => Some(format!("exited {st} at once: {err}")),
            _ => None,
        })
    }
}

#[test]
fn every_command_line_of_the_docs_runs_as_written() {
    require_docker().unwrap();
    let lines = doc_lines(&workspace_root()).unwrap();
    let mut tour = Tour::new().unwrap();
    let mut seen = HashSet::new();
    let mut later = Vec::new();
    let mut skipped = Vec::new();
    for doc in &lines {
        if let Some(why) = covered_elsewhere(&doc.text) {
            skipped.push(format!("{}:{}: {} ({why})", doc.file, doc.line, doc.text));
            continue;
        }
        let text = doc
            .text
            .replace("<admin token>", &tour.admin_token.clone())
            .replace("<API pin>", &tour.api_pin.clone())
            .replace("<join token>", &tour.join_token.clone());
        for cmd in variants(&text).unwrap() {
            assert!(
                cmd.starts_with("nextdeploy ") || cmd.starts_with("nextdeploy-agent "),
                "{}:{}: `{cmd}` is neither a nextdeploy command nor in COVERED_ELSEWHERE",
                doc.file,
                doc.line
            );
            if !seen.insert(cmd.clone()) {
                continue;
            }
            if is_daemon(&cmd) {
                tour.start_daemon(&cmd).unwrap();
            } else if deferred(&cmd) {
                later.push((doc.clone(), cmd));
            } else {
                tour.run_line(doc, &cmd).unwrap();
            }
        }
    }
    for (doc, cmd) in later {
        tour.run_line(&doc, &cmd).unwrap();
    }
    eprintln!("covered elsewhere:\n  {}", skipped.join("\n  "));
    assert!(
        tour.failures.is_empty(),
        "{} documented command(s) failed as written:\n{}\n--- log ---\n{}",
        tour.failures.len(),
        tour.failures.join("\n"),
        tail(&tour.log, 60)
    );
    assert!(
        seen.len() > 40,
        "only {} commands ran: the extraction lost lines",
        seen.len()
    );
}
