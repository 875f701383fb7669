#!/usr/bin/env bash
# Fuzzes secformer's decoders and loaders for a bounded time, on stable Rust.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS is the total budget, shared equally by the targets (default 120). Targets (in
# fuzz/fuzz_targets/): frame, control, dealer_requests, config, tokenizer, safetensors.
#
# Engine: libFuzzer (the `libfuzzer-sys` crate builds it from source with the system C++
# compiler), coverage-guided through LLVM's SanitizerCoverage, which stable rustc enables
# with `-C passes=sancov-module` and `-C llvm-args`; no sanitizer (`-Z sanitizer` needs
# nightly), with debug assertions and overflow checks on, so panics, arithmetic overflow,
# failed assertions, aborts on huge allocations, timeouts and RSS over the limit are the
# findings. The corpus grows in target/fuzz/corpus/TARGET, seeded by fuzz/src/bin/make_seeds.rs;
# a finding is written to target/fuzz/artifacts/TARGET/ and fails the script (reproduce it
# with `target/fuzz/<triple>/release/TARGET FILE`).
set -euo pipefail
cd "$(dirname "$0")/.."

budget="${1:-120}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(frame control dealer_requests config tokenizer safetensors sealed)
fi
per=$(( budget / ${#targets[@]} ))
(( per >= 1 )) || per=1

host=$(rustc -vV | sed -n 's/^host: //p')
flags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    --cfg fuzzing
    -Cdebug-assertions
    -Coverflow-checks
)
echo "== fuzz: building ${targets[*]} (libFuzzer, stable $(rustc --version | cut -d' ' -f2))"
# --target keeps the instrumentation out of build scripts and proc macros.
RUSTFLAGS="${flags[*]}" cargo build --release --quiet \
    --manifest-path fuzz/Cargo.toml --target-dir target/fuzz --target "$host" \
    --bin make_seeds $(printf -- '--bin %s ' "${targets[@]}")
# Seeds: well-formed examples of every format, written with the project's own types.
seeds=target/fuzz/seeds
rm -rf "$seeds"
"target/fuzz/$host/release/make_seeds" "$seeds"

summary=()
failed=0
for t in "${targets[@]}"; do
    corpus="target/fuzz/corpus/$t"
    artifacts="target/fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts" "$seeds/$t"
    log="target/fuzz/$t.log"
    echo "== fuzz: $t for ${per}s"
    set +e
    "target/fuzz/$host/release/$t" "$corpus" "$seeds/$t" \
        -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    summary+=("$(printf '%-16s %4ss %10s runs  coverage %6s  corpus %5s files  exit %s' \
        "$t" "$per" "${runs:-?}" "${cov:-?}" "$(ls "$corpus" | wc -l)" "$rc")")
    if (( rc != 0 )); then
        failed=1
        echo "fuzz: $t found a problem (exit $rc):"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 || tail -30 "$log"
    fi
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
