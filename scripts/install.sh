#!/usr/bin/env bash
# Builds libpwal (release) and installs it under PREFIX:
#
#   PREFIX/lib/libpwal.so.X.Y.Z, libpwal.so.X -> it, libpwal.so -> libpwal.so.X
#   PREFIX/lib/libpwal.a
#   PREFIX/include/pwal.h
#   PREFIX/lib/pkgconfig/pwal.pc
#
# Usage: scripts/install.sh PREFIX        (e.g. /usr/local or "$HOME/.local")
# Then:  cc app.c $(pkg-config --cflags --libs pwal)
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if PREFIX is not a system prefix).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$1"
prefix=$(cd "$1" && pwd)

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}
[[ -n $version ]] || { echo "install.sh: no version in Cargo.toml" >&2; exit 1; }

(cd "$root" && cargo build --release --lib)
built=${CARGO_TARGET_DIR:-$root/target}/release

install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$built/libpwal.so" "$prefix/lib/libpwal.so.$version"
ln -sfn "libpwal.so.$version" "$prefix/lib/libpwal.so.$major"
ln -sfn "libpwal.so.$major" "$prefix/lib/libpwal.so"
install -m 0644 "$built/libpwal.a" "$prefix/lib/libpwal.a"
install -m 0644 "$root/include/pwal.h" "$prefix/include/pwal.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$root/pwal.pc.in" \
    >"$prefix/lib/pkgconfig/pwal.pc"

# The pwal command (cli/): info, verify, dump, repair, bench.
(cd "$root" && cargo build --release -p pwal-cli)
install -d "$prefix/bin"
install -m 0755 "$built/pwal" "$prefix/bin/pwal"

echo "installed pwal $version under $prefix"
case "$prefix" in
/usr | /usr/local)
    if [[ -w /etc/ld.so.cache || ! -e /etc/ld.so.cache ]] && command -v ldconfig >/dev/null; then
        ldconfig
    fi
    ;;
*)
    echo "  build:  PKG_CONFIG_PATH=$prefix/lib/pkgconfig cc app.c \$(pkg-config --cflags --libs pwal)"
    echo "  run:    LD_LIBRARY_PATH=$prefix/lib ./a.out   (or link with -Wl,-rpath,$prefix/lib)"
    ;;
esac
