//! Where things are: the workspace, its target directory and binaries; temp
//! directories kept when a test fails; small file helpers.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread;

use anyhow::{bail, Context, Result};

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target directory (`CARGO_TARGET_DIR`, relative paths taken from
/// the workspace root; default `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Path of a workspace binary in `<target>/debug`, or a clear error.
pub fn bin(name: &str) -> Result<PathBuf> {
    let p = target_dir().join("debug").join(name);
    if p.is_file() {
        Ok(p)
    } else {
        bail!(
            "binary {} not found: run cargo build --workspace first",
            p.display()
        )
    }
}

/// The `nextdeploy` binary (hub and CLI).
pub fn hub_bin() -> Result<PathBuf> {
    bin("nextdeploy")
}

/// The `nextdeploy-agent` binary.
pub fn agent_bin() -> Result<PathBuf> {
    bin("nextdeploy-agent")
}

/// A temporary directory removed on drop, kept (and its path printed) when
/// the test is panicking so its logs can be read.
#[derive(Debug)]
pub struct TempDir {
    inner: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory `nextdeploy-test-<tag>-XXXXXX` under the system
    /// temp dir.
    pub fn new(tag: &str) -> Result<TempDir> {
        let inner = tempfile::Builder::new()
            .prefix(&format!("nextdeploy-test-{tag}-"))
            .tempdir()
            .with_context(|| format!("create a temp dir for {tag}"))?;
        let path = inner.path().to_path_buf();
        Ok(TempDir {
            inner: Some(inner),
            path,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(d) = self.inner.take() {
            if thread::panicking() {
                eprintln!("(kept for inspection: {})", d.keep().display());
            }
        }
    }
}

/// The last `n` lines of a file (lossy), for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(n);
            lines[from..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A whole file, lossily decoded; empty if it cannot be read.
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Bytes of every regular file under `dir` (recursively), with their paths.
pub fn read_tree(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("read dir {}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let mut bytes = Vec::new();
                fs::File::open(e.path())?.read_to_end(&mut bytes)?;
                out.push((e.path(), bytes));
            }
        }
    }
    Ok(out)
}

/// Whether `haystack` contains `needle` as a byte string.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
