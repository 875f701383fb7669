#!/usr/bin/env bash
# CI for the firmware example (called from .ci/run): installs QEMU and the Cortex-M
# target if missing, checks and builds the firmware (with and without defmt), shows that
# nothing in its dependency tree enables alloc/std, prints its flash and RAM use, and runs
# the QEMU integration test over both transports with QEMU required (no silent skip).
set -euo pipefail
cd "$(dirname "$0")/.."
FW=firmware-example
ELF=$FW/target/thumbv7em-none-eabihf/release/secformer-firmware
ELF_DEFMT=$FW/target/defmt/thumbv7em-none-eabihf/release/secformer-firmware

echo "== qemu-system-arm"
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qemu-system-arm
fi
qemu-system-arm --version | head -n 1

echo "== rust target"
rustup target add thumbv7em-none-eabihf

echo "== firmware: format, clippy, build (default, and with defmt)"
(cd $FW && cargo fmt -- --check)
(cd $FW && cargo clippy --release -- -D warnings)
(cd $FW && cargo clippy --release --features defmt -- -D warnings)
(cd $FW && cargo build --release)
(cd $FW && cargo build --release --features defmt --target-dir target/defmt)

echo "== no heap: no crate in the firmware's tree has its alloc or std feature on"
# (normal dependencies of the target; proc-macros and build scripts run on the host)
tree=$(cd $FW && cargo tree -e features,normal,no-proc-macro --target thumbv7em-none-eabihf \
  --features defmt)
if grep -E 'feature "(alloc|std)"' <<<"$tree"; then
  echo "error: the firmware's dependency tree enables alloc or std (above)" >&2
  exit 1
fi
# And the binary has no allocator: a crate that allocated would fail to link without one.
if grep -rq "global_allocator" $FW/src; then
  echo "error: the firmware defines a global allocator" >&2
  exit 1
fi
echo "ok: no alloc/std feature, no global allocator ($(grep -c . <<<"$tree") tree lines)"

echo "== size (flash = code + read-only data; RAM = statics, the stack comes on top)"
if command -v arm-none-eabi-size >/dev/null 2>&1; then
  arm-none-eabi-size -A "$ELF" | grep -E '^(section|\.vector|\.text|\.rodata|\.data|\.bss|\.uninit)'
fi
python3 scripts/elf_size.py "$ELF"
echo "with defmt:"
python3 scripts/elf_size.py "$ELF_DEFMT" | tail -n 1

echo "== the firmware under QEMU: UART over TCP and semihosting, faults (QEMU required)"
SECFORMER_REQUIRE_QEMU=1 SECFORMER_FIRMWARE_ELF="$PWD/$ELF" \
  cargo test --release -p secformer-host --test firmware_qemu -- --nocapture --test-threads 1

echo "== the defmt build runs too (logs to $(dirname "$ELF_DEFMT")/secformer-fw.defmt)"
SECFORMER_REQUIRE_QEMU=1 SECFORMER_FIRMWARE_ELF="$PWD/$ELF_DEFMT" \
  cargo test --release -p secformer-host --test firmware_qemu -- qemu_semihosting_block_matches_f64
if command -v defmt-print >/dev/null 2>&1; then
  defmt-print -e "$ELF_DEFMT" < "$(dirname "$ELF_DEFMT")/secformer-fw.defmt"
else
  echo "(defmt-print not installed: not decoding; cargo install defmt-print to read it)"
fi
