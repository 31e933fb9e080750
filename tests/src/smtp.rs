//! A real SMTP server on loopback for the email channel: Python's aiosmtpd
//! (`pip install aiosmtpd`, scripts/test.sh installs it) on a port the OS
//! picks, writing each accepted message to a directory as JSON (envelope
//! sender and recipients, the message's text). A recipient at
//! `@refused.test` is refused with `550 5.1.1`, so a test sees a server's
//! refusal come back. It offers AUTH (PLAIN, LOGIN) without TLS and takes
//! any user with [`SmtpServer::PASSWORD`], recording who sent each message;
//! [`SmtpServer::start_tls`] requires STARTTLS or speaks implicit TLS. Its
//! helpers panic on a broken server: that fails the
//! test that uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{wait_until, Proc, TempDir};

/// Bound for the server to listen.
const START_WAIT: Duration = Duration::from_secs(20);

const SERVER: &str = r#"
import asyncio, itertools, json, os, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult

out, password, mode = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
seq = itertools.count()
tls = None
if mode != "plain":
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[4], sys.argv[5])

def authenticate(server, session, envelope, mechanism, data):
    ok = data.password == password
    return AuthResult(success=ok, auth_data=data.login.decode() if ok else None)

class Keep:
    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.endswith("@refused.test"):
            return "550 5.1.1 <%s>: no such mailbox here" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        i = next(seq)
        tmp = os.path.join(out, ".%d.tmp" % i)
        with open(tmp, "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "user": session.auth_data,
                       "tls": server.transport.get_extra_info("ssl_object") is not None,
                       "data": envelope.content.decode("utf-8", "replace")}, f)
        os.rename(tmp, os.path.join(out, "%d.json" % i))
        return "250 Message accepted"

async def main():
    loop = asyncio.get_running_loop()
    starttls = dict(tls_context=tls, require_starttls=True) if mode == "starttls" else {}
    smtp = lambda: SMTP(Keep(), hostname="smtp.test", auth_require_tls=False,
                        authenticator=authenticate, **starttls)
    implicit = tls if mode == "tls" else None
    srv = await loop.create_server(smtp, "127.0.0.1", 0, ssl=implicit)
    with open(os.path.join(out, ".port.tmp"), "w") as f:
        f.write(str(srv.sockets[0].getsockname()[1]))
    os.rename(os.path.join(out, ".port.tmp"), os.path.join(out, "port"))
    await srv.serve_forever()

asyncio.run(main())
"#;

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope's recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body).
    pub data: String,
    /// The SMTP user it was sent as, if it authenticated.
    pub user: Option<String>,
    /// Whether it came over TLS (STARTTLS or implicit).
    pub tls: bool,
}

impl Mail {
    /// A header's value (unfolded), or "".
    pub fn header(&self, name: &str) -> String {
        let mut value: Option<String> = None;
        for line in self.data.lines() {
            if line.is_empty() {
                break;
            }
            match &mut value {
                Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
                Some(_) => break,
                None => {
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case(name) {
                            value = Some(v.trim().to_string());
                        }
                    }
                }
            }
        }
        value.unwrap_or_default()
    }
}

/// The server; stopped (SIGKILL) on drop.
pub struct SmtpServer {
    pub port: u16,
    dir: TempDir,
    _proc: Proc,
}

impl SmtpServer {
    /// The password AUTH accepts.
    pub const PASSWORD: &'static str = "smtp-pass-secret-0005";

    /// Plain SMTP.
    pub fn start() -> SmtpServer {
        SmtpServer::start_with(&["plain"])
    }

    /// SMTP that requires STARTTLS (`starttls`) or speaks TLS from the first
    /// byte (`tls`), with `cert` and `key` (PEM files).
    pub fn start_tls(mode: &str, cert: &Path, key: &Path) -> SmtpServer {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        SmtpServer::start_with(&[mode, cert, key])
    }

    fn start_with(mode: &[&str]) -> SmtpServer {
        let dir = TempDir::new("smtp").unwrap();
        let mut cmd = Command::new("python3");
        cmd.args(["-c", SERVER])
            .arg(dir.path())
            .arg(SmtpServer::PASSWORD)
            .args(mode)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut proc = Proc::spawn(cmd).unwrap();
        let port_file = dir.path().join("port");
        let port = wait_until(
            "the SMTP server (python3 with aiosmtpd)",
            START_WAIT,
            Duration::from_millis(100),
            || {
                if let Some(status) = proc.try_status() {
                    anyhow::bail!("the SMTP server exited ({status}): is aiosmtpd installed?");
                }
                Ok(std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|p| p.trim().parse::<u16>().ok()))
            },
        )
        .unwrap();
        SmtpServer {
            port,
            dir,
            _proc: proc,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((n, p))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                Mail {
                    to: v["to"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_string())
                        .collect(),
                    data: v["data"].as_str().unwrap().to_string(),
                    user: v["user"].as_str().map(str::to_string),
                    tls: v["tls"] == true,
                }
            })
            .collect()
    }

    /// Messages that match, once at least `n` are there.
    pub fn wait_for(&self, what: &str, n: usize, f: impl Fn(&Mail) -> bool) -> Vec<Mail> {
        let wait = crate::receiver::RECEIVE_WAIT;
        wait_until(what, wait, Duration::from_millis(200), || {
            let hits: Vec<Mail> = self.messages().into_iter().filter(|m| f(m)).collect();
            Ok((hits.len() >= n).then_some(hits))
        })
        .unwrap()
    }
}
