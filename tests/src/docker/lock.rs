//! The cross-process lock that serializes the Docker suites: `flock(2)` on
//! one file, so suites in other processes (and other test threads) wait.

use std::fs::{File, OpenOptions};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Bound for waiting on the Docker suites' lock (other suites hold it meanwhile).
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);
/// The lock every Docker suite takes for the whole test.
pub const LOCK_FILE: &str = "/tmp/nextdeploy-docker-tests.lock";

/// An exclusive `flock` on [`LOCK_FILE`], released on drop (or when this
/// process dies and its descriptor closes).
pub struct DockerLock {
    _lock: Flock<File>,
}

impl std::fmt::Debug for DockerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DockerLock({LOCK_FILE})")
    }
}

/// Take the Docker suites' lock (waits while another test holds it).
pub fn docker_lock() -> Result<DockerLock> {
    let start = Instant::now();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(LOCK_FILE)
        .with_context(|| format!("open {LOCK_FILE}"))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let waited = start.elapsed();
                if waited > Duration::from_secs(1) {
                    eprintln!("(waited {waited:?} for {LOCK_FILE})");
                }
                return Ok(DockerLock { _lock: lock });
            }
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => file = f,
            Err((_, e)) => bail!("flock {LOCK_FILE}: {e}"),
        }
        if start.elapsed() > LOCK_TIMEOUT {
            bail!("could not take {LOCK_FILE} within {LOCK_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}
