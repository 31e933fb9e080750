//! The Docker suites' fixture image (busybox and a small script, built from
//! scratch with the classic builder; no registry needed), and the image
//! builder the deploy fixtures share.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::docker_raw;
use crate::paths::TempDir;
use crate::process::run_raw;

/// Bound for building one fixture image.
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);

/// The fixture image's Dockerfile (classic builder; no registry needed).
pub const FIXTURE_DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/t"]
COPY app.sh /bin/app.sh
ENTRYPOINT ["/bin/sh", "/bin/app.sh"]
CMD ["idle"]
"#;

/// The fixture's program; the first argument says what to do.
pub const FIXTURE_APP: &str = r#"# NextDeploy end-to-end fixture.
#   idle           sleep until SIGTERM/SIGINT (exits 0 at once on either)
#   logs           a fixed set of lines on stdout and stderr (one not UTF-8,
#                  one of 70,000 bytes), then idle
#   tick           "tick N" on stdout every 300 ms
#   burn           burn one core
#   exit CODE [S]  sleep S seconds (default 1), exit CODE (default 3)
#   mem MB         write MB MiB into /t (mount a tmpfs there), then idle
idle() {
  trap 'exit 0' TERM INT
  sleep 1000000000 &
  wait
}
mode="${1:-idle}"
[ $# -gt 0 ] && shift
case "$mode" in
  idle) idle ;;
  logs)
    echo "stdout line 1"
    echo "stderr line 1" >&2
    printf '\377\376binary\n'
    printf 'stderr \377\376 binary\n' >&2
    echo "stdout line 3"
    head -c 70000 /dev/zero | tr '\000' 'x'; echo
    echo "stderr line 3" >&2
    echo "stdout last"
    echo "stderr last" >&2
    idle
    ;;
  tick)
    i=0
    while :; do i=$((i+1)); echo "tick $i"; sleep 0.3; done
    ;;
  burn) while :; do :; done ;;
  exit) sleep "${2:-1}"; exit "${1:-3}" ;;
  mem)
    dd if=/dev/zero of=/t/fill bs=1048576 count="${1:-50}" 2>/dev/null
    idle
    ;;
  *) echo "unknown mode $mode" >&2; exit 64 ;;
esac
"#;

/// Eight hex digits of the SHA-256 of `parts` (each length-prefixed): a
/// stable content tag for an image.
pub fn content_tag(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..4])
}

/// The fixture image's tag, `nextdeploy-fixture:<hash8>`, from the content
/// of the Dockerfile and the script.
pub fn fixture_tag() -> String {
    let h = content_tag(&[FIXTURE_DOCKERFILE.as_bytes(), FIXTURE_APP.as_bytes()]);
    format!("nextdeploy-fixture:{h}")
}

/// Build `files` (name, content; a `Dockerfile` among them), with
/// /bin/busybox beside them in the context, as `tag`, unless an image with
/// that tag exists. Returns the tag.
pub fn build_image(tag: &str, files: &[(&str, &str)]) -> Result<String> {
    if docker_raw(&["image", "inspect", "--format", "{{.Id}}", tag])?
        .status
        .success()
    {
        return Ok(tag.to_string());
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: install busybox-static (scripts/test.sh does)");
    }
    let dir = TempDir::new("image")?;
    fs::copy(busybox, dir.path().join("busybox")).context("copy /bin/busybox")?;
    for (name, content) in files {
        fs::write(dir.path().join(name), content)?;
    }
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "-t", tag])
        .arg(dir.path());
    run_raw(cmd, BUILD_TIMEOUT)?
        .ok()
        .with_context(|| format!("build the fixture image {tag}"))?;
    Ok(tag.to_string())
}

/// The fixture image's tag, built first if no image with this content's
/// tag exists yet.
pub fn fixture_image() -> Result<String> {
    build_image(
        &fixture_tag(),
        &[("Dockerfile", FIXTURE_DOCKERFILE), ("app.sh", FIXTURE_APP)],
    )
}
