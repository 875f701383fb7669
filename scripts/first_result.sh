#!/usr/bin/env bash
# Time to first result of a fresh client (setup, first pass drawn, online) and of a client
# that resumes its kept session (no setup; its kept pass is ready), for MiniLM on a real
# sentence and for a random BERT-base at 128 tokens. Prints JSON on stdout.
#
#   scripts/first_result.sh            (after `cargo build --release`, model fetched)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/target/release/secformer"
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
for n in dealer p0 p1; do "$bin" keygen --name "$n" --out "$tmp" >/dev/null 2>&1; done
export SECFORMER_STATE="$tmp/state"
BASE=(--synthetic --layers 12 --hidden 768 --heads 12 --intermediate 3072)
minilm="$(bash scripts/fetch_model.sh >/dev/null 2>&1; echo "$PWD/.cache/models/all-MiniLM-L6-v2")"

now() { date +%s.%N; }
measure() { # label, serve flags..., --, infer flags...
    local label="$1"; shift
    local serve=() infer=()
    while [[ "$1" != -- ]]; do serve+=("$1"); shift; done; shift
    infer=("$@")
    local dp=$((20000 + RANDOM % 20000)) pp=$((40000 + RANDOM % 20000))
    "$bin" dealer --listen "127.0.0.1:$dp" --key "$tmp/dealer.key" \
        --trust "$tmp/p0.pub" --trust "$tmp/p1.pub" 2>"$tmp/d.log" &
    pids+=($!)
    "$bin" serve --listen "127.0.0.1:$pp" --dealer "127.0.0.1:$dp" --key "$tmp/p0.key" \
        --trust "$tmp/dealer.pub" --trust "$tmp/p1.pub" "${serve[@]}" 2>"$tmp/p0.log" &
    pids+=($!)
    sleep 1
    while ! grep -q "listening" "$tmp/p0.log"; do sleep 0.5; done
    local client=("$bin" infer --connect "127.0.0.1:$pp" --dealer "127.0.0.1:$dp"
        --key "$tmp/p1.key" --trust "$tmp/dealer.pub" --trust "$tmp/p0.pub" "${infer[@]}")
    local t0 t1 t2
    t0=$(now); "${client[@]}" >/dev/null 2>"$tmp/fresh.log"; t1=$(now)
    "${client[@]}" >/dev/null 2>"$tmp/resumed.log"; t2=$(now)
    grep -q "resumed" "$tmp/resumed.log" || { echo "the second run did not resume" >&2; cat "$tmp/resumed.log" >&2; exit 1; }
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    pids=()
    rm -rf "$SECFORMER_STATE"
    python3 -c "import json,sys; print(json.dumps({'model': sys.argv[1], 'fresh_seconds': round(float(sys.argv[3])-float(sys.argv[2]),2), 'resumed_seconds': round(float(sys.argv[4])-float(sys.argv[3]),2)}))" \
        "$label" "$t0" "$t1" "$t2"
}
{
    echo "["
    measure "all-MiniLM-L6-v2, one sentence" --model "$minilm" -- \
        --model "$minilm" --text "The quick brown fox jumps over the lazy dog."
    echo ","
    measure "BERT-base (random), 128 tokens" "${BASE[@]}" -- "${BASE[@]}" --tokens 128
    echo "]"
} | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin), indent=1))"
