#!/usr/bin/env bash
# Runs the benchmarks behind docs/BENCHMARKS.md and writes one JSON file per run to
# docs/bench/ (then `python3 scripts/bench_report.py` rebuilds the document and the plot).
#
#   scripts/bench_matrix.sh [all|loopback|net|stream|resume|batch]   (default: all)
#
# Each `secformer bench bert` runs D, P0 and P1 as three processes (ephemeral keys), warms
# the pool, pauses it and measures three online passes. --net lan|wan shapes the links with
# network namespaces and tc netem as root, else with userspace relays (same rate and delay). BERT-large at 512 tokens spills its preprocessing to files
# (--pool-memory) so that the three processes fit in 24 GiB. A full run takes about an
# hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
out=docs/bench
mkdir -p "$out"
cargo build --release -q
bin=target/release/secformer
LARGE=(--layers 24 --hidden 1024 --heads 16 --intermediate 4096)

run() { # name, then bench bert flags
    local name="$1"; shift
    echo "== $name: secformer bench bert $*" >&2
    local start=$SECONDS
    "$bin" bench bert --json "$@" > "$out/$name.json.tmp" 2> "$out/$name.log"
    mv "$out/$name.json.tmp" "$out/$name.json"
    echo "   done in $((SECONDS - start)) s" >&2
}

if [[ "$what" == all || "$what" == loopback ]]; then
    run base-128-2quad --softmax 2quad --seq 128
    run base-512-2quad --softmax 2quad --seq 512
    run large-128-2quad --softmax 2quad --seq 128 "${LARGE[@]}"
    run large-512-2quad --softmax 2quad --seq 512 "${LARGE[@]}" --pool-memory 1024
    run base-128-exact --softmax exact --seq 128
    # The kernel's share of the time: the same pass with the AVX2 kernel forced.
    SECFORMER_KERNEL=avx2 run base-128-2quad-avx2 --softmax 2quad --seq 128
    run large-128-exact --softmax exact --seq 128 "${LARGE[@]}"
    # The exact softmax at 512 tokens needs 17.6 GB (BERT-base) and about 47 GB (BERT-large)
    # of preprocessing per party per pass (`secformer bench plan --seq 512 --softmax exact`):
    # set EXACT_512=1 on a machine with the disk (or memory) for two such passes.
    if [[ "${EXACT_512:-0}" == 1 ]]; then
        run base-512-exact --softmax exact --seq 512 --pool-memory 1024
        run large-512-exact --softmax exact --seq 512 "${LARGE[@]}" --pool-memory 1024
    fi
fi
if [[ "$what" == all || "$what" == net ]]; then
    for net in lan wan; do
        for sm in 2quad exact; do
            run "base-128-$sm-$net" --softmax "$sm" --seq 128 --net "$net"
        done
    done
fi
if [[ "$what" == all || "$what" == stream ]]; then
    # Throughput: a warm pool and a stream of requests, offline and online together.
    run "stream-base-128" --softmax 2quad --seq 128 --stream 10
    run "stream-minilm-128" --softmax 2quad --seq 128 --stream 30 \
        --layers 6 --hidden 384 --heads 12 --intermediate 1536
fi
if [[ "$what" == all || "$what" == batch ]]; then
    # Batches (issue 12): all-MiniLM-L6-v2's shape, 16-token bucket (a short sentence),
    # 1, 4 and 16 texts per pass, loopback and the simulated WAN, one run at a time; the exact
    # softmax (what the real checkpoint runs: no `secformer_softmax` in its config.json), then
    # the 2Quad one.
    for sm in exact 2quad; do
        pre=batch-minilm-; [[ $sm == exact ]] || pre="batch-minilm-$sm-"
        for net in loopback wan; do
            for b in 1 4 16; do
                run "$pre$net-b$b" --softmax "$sm" --seq 16 --batch "$b" --net "$net" \
                    --layers 6 --hidden 384 --heads 12 --intermediate 1536
            done
        done
    done
fi
if [[ "$what" == all || "$what" == resume ]]; then
    bash scripts/first_result.sh > "$out/first-result.json"
fi
