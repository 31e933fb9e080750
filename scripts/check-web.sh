#!/usr/bin/env bash
# The dashboard the hub embeds (web/dist, committed so that `cargo build`
# needs no npm) must be exactly what its source builds, and its protocol
# types (web/src/protocol.gen.ts) exactly what docs/protocol.schema.json
# generates (the build runs `npm run types` first): install the locked
# packages (npm ci) and build in a temporary copy of web/, then compare with
# the committed web/dist. Vite's output, hashed names included, is the same
# bytes on every machine for the same source and lockfile.
# After changing web/src: `cd web && npm ci && npm run build`, commit web/dist.
set -euo pipefail
cd "$(dirname "$0")/../web"

die() { printf 'check-web: %s\n' "$*" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || die "npm is missing (Node.js 20.19 or newer with npm)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The sources only: no node_modules, no dist.
mkdir -p "$tmp/web" "$tmp/docs"
cp ../docs/protocol.schema.json "$tmp/docs/"
tar --exclude=./node_modules --exclude=./dist -cf - . | tar -xf - -C "$tmp/web"
(
    cd "$tmp/web"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    npm run build --silent >/dev/null
) || die "the build failed (run it in web/: npm ci && npm run build)"

if ! diff src/protocol.gen.ts "$tmp/web/src/protocol.gen.ts" >"$tmp/diff.txt" 2>&1; then
    head -20 "$tmp/diff.txt" >&2
    die "web/src/protocol.gen.ts is stale against docs/protocol.schema.json: cd web && npm run build, then commit it and web/dist"
fi
if ! diff -r dist "$tmp/web/dist" >"$tmp/diff.txt" 2>&1; then
    head -20 "$tmp/diff.txt" >&2
    die "web/dist is stale against web/src: cd web && npm ci && npm run build, then commit web/dist"
fi
echo "check-web: web/dist and web/src/protocol.gen.ts match their sources"
