#!/bin/sh
# Regenerates the seed corpus of fuzz/corpus (two valid logs, and the first
# frames of each) from the current format. Run after any change to the
# on-disk format, then commit fuzz/corpus.
set -eu
cd "$(dirname "$0")/.."
cargo test --release --test fuzz_recovery write_seed_corpus -- --ignored --exact
ls -l fuzz/corpus/recovery fuzz/corpus/epoch_frame
