#!/usr/bin/env bash
# Long torture run: >= 1,000,000 simulated crash states, every fault at every
# operation, 10,000 SIGKILLs of a real writer, 2,000,000 fuzzed logs, and the
# loom model at a higher preemption bound. Release build (the same tests as
# the default `cargo test`, with bigger counts); takes a few hours on 2 cores.
#
#   scripts/soak.sh                 # everything
#   SOAK_ONLY=crash scripts/soak.sh # one of: crash faults sigkill fuzz loom cargo-fuzz
#
# Each test prints its figures; a failure prints its seed and the command that
# replays it. Optional: FUZZ_SECONDS=600 runs each cargo-fuzz target that long
# when cargo-fuzz and a nightly toolchain are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

only="${SOAK_ONLY:-}"
want() { [[ -z "$only" || "$only" == "$1" ]]; }
run() { echo "== $*"; "$@"; }

if want crash; then
  # ~4,400 crash states per seed over all workloads, plus crashes during reopen.
  run env PWAL_TORTURE_SEEDS="${SOAK_SEEDS:-240}" PWAL_TORTURE_BASE_SEED="${SOAK_BASE_SEED:-$RANDOM}" \
    cargo test --release --test torture_crash -- --nocapture
fi
if want faults; then
  # Every case already runs by default (no stride): the same test, with its
  # figures printed, plus the read-side fault sweep.
  run cargo test --release --test torture_faults -- --nocapture
  run cargo test --release --test sim_read_faults -- --nocapture
fi
if want sigkill; then
  run env PWAL_SIGKILL_KILLS="${SOAK_KILLS:-10000}" PWAL_SIGKILL_SEED="${SOAK_BASE_SEED:-$RANDOM}" \
    cargo test --release --test sigkill -- --nocapture
  run cargo test --release --test torture_kernel_errors -- --nocapture
fi
if want fuzz; then
  run env PWAL_FUZZ_ITERS="${SOAK_FUZZ_ITERS:-2000000}" PWAL_FUZZ_SEED="${SOAK_BASE_SEED:-$RANDOM}" \
    cargo test --release --test fuzz_recovery -- --nocapture
fi
if want loom; then
  run env PWAL_LOOM_BOUND=3 cargo test --release --test loom_commit -- --nocapture
fi
if want cargo-fuzz && [[ -n "${FUZZ_SECONDS:-}" ]]; then
  if cargo fuzz --version >/dev/null 2>&1 && rustup toolchain list | grep -q nightly; then
    for t in epoch_frame recovery; do
      run cargo +nightly fuzz run "$t" -- -max_total_time="$FUZZ_SECONDS"
    done
  else
    echo "cargo-fuzz or nightly missing: skipping the libFuzzer targets"
  fi
fi
