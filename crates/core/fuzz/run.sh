#!/usr/bin/env bash
# Runs every parser's fuzz target with libFuzzer for SECONDS each (default 600), one after the
# other, starting from the seed lines in seeds/<target>; prints each run's execution count and
# fails on the first crash (the crashing input is left in artifacts/<target>/).
# Installs cargo-fuzz when missing. The stable toolchain builds the sanitizer flags it needs with
# RUSTC_BOOTSTRAP=1 (no nightly toolchain can be fetched here).
#   crates/core/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECONDS_EACH="${1:-600}"; shift || true
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(json apache syslog5424 syslog3164)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  cargo fuzz build -O "$target" >/dev/null
  log="artifacts/$target/run.log"
  echo "[fuzz] $target: ${SECONDS_EACH} s"
  if ! cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"; echo "[fuzz] $target: CRASH (input in artifacts/$target/)"; exit 1
  fi
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "[fuzz] $target: ${execs} executions in ${SECONDS_EACH} s, no crash"
done
