#!/bin/sh
# fetch-amalgamation.sh VERSION DEST
#
# Copies SQLite's amalgamation (sqlite3.c, sqlite3.h, sqlite3ext.h) out of
# the crates.io crate libsqlite3-sys VERSION into DEST. The crate is fetched
# by cargo itself, through a throwaway package under DEST/.fetch, so it comes
# from whatever registry (or offline cache) cargo is set up to use; a crate
# already in cargo's cache is not downloaded again.
set -eu
version=$1
dest=$2
fetch=$dest/.fetch
mkdir -p "$fetch/src"
cat >"$fetch/Cargo.toml" <<TOML
[package]
name = "pwal-fetch-sqlite-amalgamation"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
libsqlite3-sys = "=$version"
TOML
: >"$fetch/src/lib.rs"
cargo=${CARGO:-cargo}
# `cargo metadata` downloads and unpacks every package of the resolve and
# names where each manifest lies.
if ! meta=$("$cargo" metadata --format-version 1 --manifest-path "$fetch/Cargo.toml"); then
    echo "fetch-amalgamation.sh: cargo could not fetch libsqlite3-sys $version from crates.io" >&2
    echo "(is the registry reachable, or the crate in cargo's cache?)" >&2
    exit 1
fi
manifest=$(printf '%s' "$meta" | tr ',' '\n' |
    sed -n 's/.*"manifest_path":"\(.*libsqlite3-sys-'"$version"'\/Cargo.toml\)".*/\1/p' | head -n 1)
if [ -z "$manifest" ]; then
    echo "fetch-amalgamation.sh: cargo metadata names no libsqlite3-sys-$version" >&2
    exit 1
fi
src=$(dirname "$manifest")/sqlite3
for f in sqlite3.c sqlite3.h sqlite3ext.h; do
    [ -f "$src/$f" ] || { echo "fetch-amalgamation.sh: $src/$f is missing" >&2; exit 1; }
done
cp "$src/sqlite3.h" "$src/sqlite3ext.h" "$dest/"
# sqlite3.c last: make tests for it, so it only exists when all three do.
cp "$src/sqlite3.c" "$dest/sqlite3.c.tmp"
mv "$dest/sqlite3.c.tmp" "$dest/sqlite3.c"
rm -rf "$fetch"
echo "fetch-amalgamation.sh: SQLite $(sed -n 's/^#define SQLITE_VERSION  *"\(.*\)"/\1/p' "$dest/sqlite3.h") from libsqlite3-sys $version"
