#!/usr/bin/env bash
# Mutation testing of the trust boundary: the code that decides what a log on
# disk means (src/recovery.rs, src/epoch.rs and the variable-length integers
# it reads, src/varint.rs, src/segment.rs, and recovery's
# bookkeeping of transactions in parts and of the epochs a checkpoint keeps,
# src/parted.rs and src/pins.rs). cargo-mutants
# changes one thing at a time (a return value, an operator, a match arm) and
# runs a test selection that should notice (the unit tests, recovery_damage,
# recovery_format, fuzz_recovery, torture_regressions, mutants_killed: built
# and run alone); a mutant the tests do not notice
# ("missed") is either a gap in the tests or an equivalent change, and
# docs/TESTING.md lists each one with what was done about it.
#
#   scripts/mutants.sh                          # all six files
#   scripts/mutants.sh src/epoch.rs             # one file
#   MUTANTS_SHARD=0/4 scripts/mutants.sh src/recovery.rs   # a quarter of it
#   MUTANTS_TESTS="large_txn core" scripts/mutants.sh src/parted.rs
#                                               # more test targets
#
# Needs `cargo install --locked cargo-mutants`. Not part of CI. Results go to
# target/mutants/<file>/mutants.out/ (caught.txt, missed.txt, unviable.txt,
# timeout.txt, and a log per mutant).
#
# The build is the debug profile: an incremental release rebuild of the crate
# and the five test targets took 77 s on 2 cores, a debug one about 10 s, and
# these tests run in about 15 s in debug. The fuzz test runs a few hundred
# mutated logs (MUTANTS_FUZZ_ITERS) instead of 100,000; the default seed is
# fixed, so every mutant meets the same logs. The unmutated tree is tested
# first (cargo-mutants' baseline); each mutant's tests are cut off after
# MUTANTS_TIMEOUT seconds (a mutant that loops forever counts as "timeout").
# Overflow checks are off, as in the release build that ships, so that a
# mutant is judged by what the shipped code would do.
# MUTANTS_JOBS (default 2) mutants are built and tested at once, each in its
# own copy of the tree (target/ included, so builds are incremental).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "cargo-mutants is not installed: cargo install --locked cargo-mutants" >&2
  exit 2
fi

files=("$@")
if ((${#files[@]} == 0)); then
  files=(src/epoch.rs src/varint.rs src/segment.rs src/recovery.rs src/parted.rs src/pins.rs)
fi
shard=()
if [[ -n "${MUTANTS_SHARD:-}" ]]; then
  shard=(--shard "$MUTANTS_SHARD")
fi
# MUTANTS_RE: only the mutants whose name matches (e.g. to re-check the
# survivors of an earlier run after adding tests).
if [[ -n "${MUTANTS_RE:-}" ]]; then
  shard+=(--re "$MUTANTS_RE")
fi

# MUTANTS_TESTS: more integration test targets to run for each mutant, by
# name (e.g. large_txn, which writes transactions in parts; contract_recovery,
# core, c_abi, which reach the recovery wrappers and the checkpoint mark).
tests=(-C --test=recovery_damage -C --test=recovery_format -C --test=fuzz_recovery
  -C --test=torture_regressions -C --test=mutants_killed)
for t in ${MUTANTS_TESTS:-}; do
  tests+=(-C "--test=$t")
done

for f in "${files[@]}"; do
  out="target/mutants/$(basename "$f" .rs)${MUTANTS_SHARD:+-${MUTANTS_SHARD/\//of}}${MUTANTS_RE:+-re}${MUTANTS_TESTS:+-wide}"
  mkdir -p "$out"
  echo "== cargo mutants --file $f ${shard[*]} (results in $out/mutants.out)"
  # Exit status 2 means "some mutants were missed": report, do not stop.
  CARGO_PROFILE_DEV_OVERFLOW_CHECKS=false CARGO_PROFILE_TEST_OVERFLOW_CHECKS=false \
  PWAL_FUZZ_ITERS="${MUTANTS_FUZZ_ITERS:-300}" cargo mutants \
    --file "$f" "${shard[@]}" \
    --jobs "${MUTANTS_JOBS:-2}" \
    --output "$out" \
    --copy-target=true \
    --timeout "${MUTANTS_TIMEOUT:-120}" \
    --test-tool cargo \
    "${tests[@]}" -C --lib || {
    rc=$?
    [[ $rc == 2 || $rc == 3 ]] || exit $rc
  }
  for kind in caught missed unviable timeout; do
    printf '%-9s %s\n' "$kind" "$(wc -l <"$out/mutants.out/$kind.txt" 2>/dev/null || echo 0)"
  done
done
