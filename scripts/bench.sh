#!/usr/bin/env bash
# One command for the comparison benchmark: installs the peers (SQLite and RocksDB
# from Debian, and strace for the syscall counts) when missing, builds, runs
# the suite and rewrites docs/BENCHMARKS.md and docs/bench-*.svg.
#
#   scripts/bench.sh            # full suite (about 20 minutes on 2 cores)
#   scripts/bench.sh --quick    # under 3 minutes once built, for CI smoke use
#   scripts/bench.sh --core     # only the core ratios (cargo bench --bench core)
#
# Any other arguments go to the benchmark (see benches/compare.rs). Data files
# go to $PWAL_BENCH_DIR or target/bench-data (must be on a real disk, not
# tmpfs) and are removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
dpkg -s librocksdb-dev >/dev/null 2>&1 || need+=(librocksdb-dev)
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
    echo "bench.sh: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

if [ "${1:-}" = "--core" ]; then
    shift
    cargo bench --bench core -- "$@"
    exit 0
fi

cargo build --release --benches
cargo bench --bench compare -- "$@"
