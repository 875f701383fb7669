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
minilm="$("$bin" fetch)"

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
    # The time at which the result line appears on stdout (the process then keeps the
    # session: it saves its state and draws the next pass before it exits).
    first() { "${client[@]}" 2>"$1" | { read -r _; now > "$tmp/first"; cat >/dev/null; }; cat "$tmp/first"; }
    local t0 f1 e1 f2 e2
    t0=$(now); f1=$(first "$tmp/fresh.log"); e1=$(now)
    f2=$(first "$tmp/resumed.log"); e2=$(now)
    grep -q "resumed" "$tmp/resumed.log" || { echo "the second run did not resume" >&2; cat "$tmp/resumed.log" >&2; exit 1; }
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    pids=()
    rm -rf "$SECFORMER_STATE"
    python3 -c "import json,sys; a=[float(x) for x in sys.argv[2:]]; t0, f1, e1, f2, e2 = a; print(json.dumps({'model': sys.argv[1], 'fresh_seconds': round(f1-t0,2), 'resumed_seconds': round(f2-e1,2), 'fresh_exit_seconds': round(e1-t0,2), 'resumed_exit_seconds': round(e2-e1,2)}))" \
        "$label" "$t0" "$f1" "$e1" "$f2" "$e2"
}
{
    echo "["
    measure "all-MiniLM-L6-v2, one sentence" --model "$minilm" -- \
        --model "$minilm" --text "The quick brown fox jumps over the lazy dog."
    echo ","
    measure "BERT-base (random), 128 tokens" "${BASE[@]}" -- "${BASE[@]}" --tokens 128
    echo "]"
} | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin), indent=1))"
