#!/usr/bin/env bash
# Install the committed SecFormer models into the model cache, where the CLI looks for models.
#
#   scripts/fetch_student.sh [CACHE_DIR]     (default: the CLI's model cache, $SECFORMER_CACHE,
#                                             else $XDG_CACHE_HOME/secformer, else
#                                             ~/.cache/secformer, as scripts/fetch_model.sh)
#
# The models live in the repository under models/ (f16 safetensors, Hugging Face layout), each
# with its sha256 in models/SHA256SUMS:
#   minilm-wordnet-teacher   all-MiniLM-L6-v2 + a classification head fine-tuned on the WordNet
#                            lexicographer-class task (exact softmax)
#   minilm-wordnet-2quad     its distilled 2Quad student
#   minilm-embed-2quad       all-MiniLM-L6-v2 distilled into a 2Quad sentence-embedding model
# (tools/distill/build_models.sh rebuilds them.) Each model's checksum is verified, then the
# directory is copied to CACHE_DIR/NAME (staged and renamed, so no half-copied directory is left
# under the final name). Prints each installed directory on its own line on stdout; everything
# else goes to stderr. Idempotent; any failure stops the script with a non-zero exit.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
default_cache="${SECFORMER_CACHE:-${XDG_CACHE_HOME:-${HOME:?set HOME, SECFORMER_CACHE or pass CACHE_DIR}/.cache}/secformer}"
cache_dir="${1:-$default_cache}"
src_root="$repo_root/models"
MODELS=(minilm-wordnet-teacher minilm-wordnet-2quad minilm-embed-2quad)

log() { echo "fetch_student: $*" >&2; }

sum_of() { sha256sum "$1" | cut -d' ' -f1; }

expected_sum() {
    local want
    want="$(awk -v f="$1/model.safetensors" '$2 == f { print $1 }' "$src_root/SHA256SUMS")"
    [[ -n "$want" ]] || { log "error: no checksum for $1/model.safetensors in models/SHA256SUMS"; exit 1; }
    echo "$want"
}

mkdir -p "$cache_dir"
for name in "${MODELS[@]}"; do
    src="$src_root/$name"
    dest="$cache_dir/$name"
    [[ -s "$src/model.safetensors" && -s "$src/config.json" ]] || {
        log "error: $src is missing or incomplete"
        exit 1
    }
    want="$(expected_sum "$name")"
    if [[ -s "$dest/model.safetensors" && "$(sum_of "$dest/model.safetensors")" == "$want" ]] \
        && diff -rq "$src" "$dest" >/dev/null 2>&1; then
        log "$name already in $dest"
        echo "$dest"
        continue
    fi
    got="$(sum_of "$src/model.safetensors")"
    if [[ "$got" != "$want" ]]; then
        log "error: $src/model.safetensors has sha256 $got, models/SHA256SUMS says $want"
        exit 1
    fi
    stage="$(mktemp -d "$cache_dir/.$name.XXXXXX")"
    trap 'rm -rf "$stage"' EXIT
    cp -R "$src/." "$stage/"
    chmod 755 "$stage"
    rm -rf "$dest"
    mv "$stage" "$dest"
    trap - EXIT
    log "installed $name into $dest"
    echo "$dest"
done
