#!/usr/bin/env bash
# Holds the vendored crates under vendor/ (see [patch.crates-io] in the root
# Cargo.toml and vendor/README.md) to what they claim to be: the published
# upstream crate plus the committed patch file, nothing else.
#
#   scripts/check-vendor.sh               check (exit 1 and list every difference)
#   scripts/check-vendor.sh --regenerate  rewrite vendor/*-nextdeploy.patch from
#                                         upstream vs vendor/, then check
#
# For each vendored crate it:
#   1. finds the published .crate (pinned by its crates.io sha256 below) in the
#      cargo registry cache; if it is missing, runs `cargo fetch` on a throwaway
#      manifest; failing that, uses the registry's unpacked src dir; else fails;
#   2. unpacks it and applies the patch file (`patch --fuzz=0`: it must apply
#      exactly, no fuzz);
#   3. compares every file present in vendor/<crate>/ with the patched upstream
#      tree, byte for byte, and fails on any difference, or on a file vendor/
#      has that upstream lacks and the patch does not add;
#   4. fails on an upstream file missing from vendor/ unless it is one the
#      vendored copy omits on purpose: examples/, benches/, tests/, Cargo.lock
#      (the published crate's, unused by a dependency), Cargo.toml.orig and
#      .cargo_vcs_info.json (packaging metadata cargo never reads);
#   5. fails if any hunk of the patch file lacks the string "NextDeploy patch",
#      or if the committed patch file is not what --regenerate would write.
#
# Cargo.toml vs Cargo.toml.orig: cargo builds from Cargo.toml, the normalized
# manifest `cargo publish` wrote; Cargo.toml.orig is the author's manifest,
# kept by the .crate for reference and never read by cargo. The vendored
# Cargo.toml is upstream's with its [[example]], [[test]] and [[bench]] tables
# removed (they name files the vendored copy omits, and cargo fails on a
# missing target path) and must otherwise be byte-identical: the script
# strips those tables from upstream's Cargo.toml the same way and compares.
# Cargo.toml is therefore not part of the patch file, and a dependency or
# feature change to it fails the check. Cargo.toml.orig, where vendored, must
# be byte-identical to upstream's.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

regenerate=0
case "${1:-}" in
  "") ;;
  --regenerate) regenerate=1 ;;
  *) echo "usage: $0 [--regenerate]" >&2; exit 2 ;;
esac

marker="NextDeploy patch"
# name version vendored-dir patch-file sha256-of-the-published-.crate
crates=(
  "russh 0.65.1 vendor/russh vendor/russh-0.65.1-nextdeploy.patch 94be3d86c71b9ed220a675c405e35c7a02565a009bf8da2e9cc13a700320a5c5"
  "russh-util 0.52.0 vendor/russh-util vendor/russh-util-0.52.0-nextdeploy.patch 668424a5dde0bcb45b55ba7de8476b93831b4aa2fa6947e145f3b053e22c60b6"
)

# A fresh machine may lack `patch`: install it as the test script installs its tools.
if ! command -v patch >/dev/null && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends patch >&2 \
    || { $sudo apt-get update -q >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends patch >&2; } \
    || true
fi
for tool in patch diff tar sha256sum awk cmp; do
  command -v "$tool" >/dev/null || { echo "check-vendor: '$tool' is not installed" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo_home=${CARGO_HOME:-$HOME/.cargo}
failed=0
fail() { echo "check-vendor: FAIL: $*" >&2; failed=1; }

# An upstream file the vendored copy may leave out.
omitted_on_purpose() {
  case "$1" in
    examples/* | benches/* | tests/* | Cargo.lock | Cargo.toml.orig | .cargo_vcs_info.json) return 0 ;;
    *) return 1 ;;
  esac
}

# Upstream's Cargo.toml as vendored: without its [[example]]/[[test]]/[[bench]]
# tables (each from its header to the next table header).
strip_targets() {
  awk '
    /^\[\[(example|test|bench)\]\][[:space:]]*$/ { skip = 1; next }
    /^\[/ { skip = 0 }
    !skip { print }
  ' "$1"
}

# Brings NAME-VERSION's .crate into the registry cache with cargo, which
# checks it against the index. Versions pinned by the workspace's Cargo.lock
# so that only the missing crates are downloaded.
cargo_fetch() {
  local name=$1 version=$2 dir="$work/fetch-$1"
  mkdir -p "$dir/src"
  : >"$dir/src/lib.rs"
  cat >"$dir/Cargo.toml" <<EOF
[package]
name = "nextdeploy-vendor-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "src/lib.rs"

[dependencies]
$name = { version = "=$version", default-features = false }
EOF
  cp Cargo.lock "$dir/Cargo.lock" 2>/dev/null || true
  local host
  host=$(rustc -vV | sed -n 's/^host: //p')
  echo "check-vendor: $name-$version.crate not in the registry cache: cargo fetch" >&2
  (cd "$dir" && cargo fetch --target "$host" --manifest-path "$dir/Cargo.toml") >&2
}

# Unpacks upstream NAME-VERSION into $work/upstream/NAME-VERSION.
unpack_upstream() {
  local name=$1 version=$2 sha=$3 crate="" src=""
  local f
  for f in "$cargo_home"/registry/cache/*/"$name-$version.crate"; do
    [[ -f $f ]] && crate=$f && break
  done
  if [[ -z $crate ]] && cargo_fetch "$name" "$version"; then
    for f in "$cargo_home"/registry/cache/*/"$name-$version.crate"; do
      [[ -f $f ]] && crate=$f && break
    done
  fi
  mkdir -p "$work/upstream"
  if [[ -n $crate ]]; then
    local got
    got=$(sha256sum "$crate" | cut -d' ' -f1)
    if [[ $got != "$sha" ]]; then
      echo "check-vendor: $crate has sha256 $got, crates.io publishes $sha" >&2
      exit 1
    fi
    tar -xzf "$crate" -C "$work/upstream"
    return
  fi
  for f in "$cargo_home"/registry/src/*/"$name-$version"; do
    [[ -d $f ]] && src=$f && break
  done
  if [[ -n $src ]]; then
    echo "check-vendor: WARNING: no $name-$version.crate and cargo fetch failed;" \
      "using the registry's unpacked $src (its sha256 cannot be checked)" >&2
    cp -r "$src" "$work/upstream/$name-$version"
    rm -f "$work/upstream/$name-$version/.cargo-ok"
    return
  fi
  echo "check-vendor: cannot get upstream $name $version: no .crate in" \
    "$cargo_home/registry/cache, cargo fetch failed, no unpacked copy in" \
    "$cargo_home/registry/src" >&2
  exit 1
}

# Files under DIR, relative, sorted.
list_files() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

# The patch file for upstream UP vs vendored VEN, to stdout: one unified diff
# per differing file (Cargo.toml aside, see the header), labelled
# NAME-VERSION/ and NAME-VERSION-nextdeploy/, no timestamps.
make_patch() {
  local up=$1 ven=$2 base=$3 rel rc
  while IFS= read -r rel; do
    [[ $rel == Cargo.toml ]] && continue
    if [[ -f $up/$rel ]]; then
      rc=0
      diff -u --label "$base/$rel" --label "$base-nextdeploy/$rel" "$up/$rel" "$ven/$rel" || rc=$?
    else
      rc=0
      diff -u --label /dev/null --label "$base-nextdeploy/$rel" /dev/null "$ven/$rel" || rc=$?
    fi
    [[ $rc -le 1 ]] || { echo "check-vendor: diff failed on $rel" >&2; exit 1; }
  done < <(list_files "$ven")
}

# Hunks of PATCH without the marker: "file @@ header" per line.
unmarked_hunks() {
  awk -v marker="$marker" '
    function done_hunk() { if (in_hunk && !marked) print file " " header; in_hunk = 0 }
    /^--- / && (!in_hunk || left <= 0) { done_hunk(); next }
    /^\+\+\+ / && !in_hunk { file = $2; next }
    /^@@ / {
      done_hunk(); in_hunk = 1; marked = 0; header = $0
      # remaining lines of the hunk, so that a removed line starting "--- "
      # is not read as the next file header
      split($2, o, ","); split($3, n, ",")
      left = (o[2] == "" ? 1 : o[2]) + (n[2] == "" ? 1 : n[2])
      next
    }
    in_hunk {
      if (index($0, marker)) marked = 1
      c = substr($0, 1, 1)
      if (c == " ") left -= 2; else if (c == "-" || c == "+") left -= 1
    }
    END { done_hunk() }
  ' "$1"
}

for entry in "${crates[@]}"; do
  read -r name version vdir patchfile sha <<<"$entry"
  base="$name-$version"
  failed_before=$failed
  failed=0
  echo "check-vendor: $vdir against upstream $base + $patchfile"
  [[ -d $vdir ]] || { fail "$vdir does not exist"; continue; }
  unpack_upstream "$name" "$version" "$sha"
  up="$work/upstream/$base"

  if [[ $regenerate == 1 ]]; then
    make_patch "$up" "$vdir" "$base" >"$patchfile"
    echo "check-vendor: wrote $patchfile"
  fi
  [[ -f $patchfile ]] || { fail "$patchfile does not exist"; continue; }

  # Upstream with the patch applied, its Cargo.toml as vendored.
  patched="$work/patched/$base"
  mkdir -p "$work/patched"
  cp -r "$up" "$patched"
  if ! patch -d "$patched" -p1 --fuzz=0 --batch --forward --no-backup-if-mismatch -s \
    -r "$work/rejects-$name" <"$patchfile" >&2; then
    fail "$patchfile does not apply cleanly to upstream $base"
    continue
  fi
  if [[ -f $patched/Cargo.toml ]]; then
    strip_targets "$up/Cargo.toml" >"$patched/Cargo.toml"
  fi

  # Every file in vendor/: present in patched upstream and identical.
  while IFS= read -r rel; do
    if [[ ! -f $patched/$rel ]]; then
      fail "$vdir/$rel: upstream $base has no such file and the patch does not add it"
    elif ! cmp -s "$patched/$rel" "$vdir/$rel"; then
      fail "$vdir/$rel differs from upstream $base + patch:"
      diff -u --label "expected/$rel" --label "$vdir/$rel" "$patched/$rel" "$vdir/$rel" |
        head -n 60 >&2 || true
    fi
  done < <(list_files "$vdir")

  # Every upstream file: in vendor/, or omitted on purpose.
  while IFS= read -r rel; do
    if [[ ! -e $vdir/$rel ]] && ! omitted_on_purpose "$rel"; then
      fail "$vdir/$rel is missing (upstream $base + patch has it, and it is not an example, bench, test or packaging file)"
    fi
  done < <(list_files "$patched")

  # Every hunk marked.
  unmarked=$(unmarked_hunks "$patchfile")
  if [[ -n $unmarked ]]; then
    fail "$patchfile: hunks without \"$marker\":"
    sed "s/^/  /" <<<"$unmarked" >&2
  fi
  hunks=$(grep -c '^@@ ' "$patchfile" || true)

  # The committed patch file is the canonical one.
  make_patch "$up" "$vdir" "$base" >"$work/regenerated-$name.patch"
  if ! cmp -s "$work/regenerated-$name.patch" "$patchfile"; then
    fail "$patchfile is not what upstream vs $vdir gives; run: scripts/check-vendor.sh --regenerate"
  fi
  if [[ $failed == 0 ]]; then
    echo "check-vendor: $vdir ok: $(list_files "$vdir" | wc -l) files, $hunks hunks, all marked"
  fi
  [[ $failed_before == 0 ]] || failed=1
done

if [[ $failed != 0 ]]; then
  echo "check-vendor: vendor/ is not upstream + the committed patches (see above)" >&2
  exit 1
fi
echo "check-vendor: vendor/ is upstream + the committed patches"
