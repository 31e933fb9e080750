#!/usr/bin/env bash
# Run the fuzz targets (docs/fuzzing.md): scripts/fuzz.sh [SECONDS] [TARGET...]
# Every target for 60 s by default, one after the other. New inputs are
# added to fuzz/corpus/<target>/ (minimise them with `cargo fuzz cmin`
# before committing); a crash is saved under fuzz/artifacts/<target>/ and
# stops the run. Only a stable toolchain is needed: cargo-fuzz's -Z flags
# are allowed through RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame flat_object request token hello)
fi
case "$seconds" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# Without a target dir of its own the fuzz build would share (and rebuild) the
# workspace's: the flags differ.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/fuzz"
for t in "${targets[@]}"; do
    echo "== fuzz target $t for ${seconds}s"
    cargo fuzz run --fuzz-dir fuzz -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1
done
