#!/usr/bin/env bash
# Builds libpwal (release) and installs it under PREFIX:
#
#   PREFIX/lib/libpwal.so.X.Y.Z, libpwal.so.X -> it, libpwal.so -> libpwal.so.X
#   PREFIX/lib/libpwal.a
#   PREFIX/lib/.debug/libpwal.so.X.Y.Z.debug
#   PREFIX/include/pwal.h
#   PREFIX/lib/pkgconfig/pwal.pc
#   PREFIX/lib/cmake/pwal/pwalConfig.cmake, pwalConfigVersion.cmake
#
# Usage: scripts/install.sh PREFIX        (e.g. /usr/local or "$HOME/.local")
# Then:  cc app.c $(pkg-config --cflags --libs pwal)
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if PREFIX is not a system prefix),
# or in CMake: find_package(pwal REQUIRED) and link to pwal::pwal (or
# pwal::pwal_static), with PREFIX in CMAKE_PREFIX_PATH. The CMake files find
# the prefix from their own location, so the installed tree can be moved; the
# pkg-config file names PREFIX.
#
# Debug info: target/release keeps its debug info (Cargo.toml); the installed
# libraries carry none. libpwal.so.X.Y.Z is stripped of it with objcopy
# --strip-debug (its symbol table stays, so backtraces and perf still name
# functions) and the debug info goes to lib/.debug/libpwal.so.X.Y.Z.debug
# (objcopy --only-keep-debug), which the library names, with its CRC, in its
# .gnu_debuglink section. gdb looks for that file in the .debug directory
# beside the library without any setting; being in a subdirectory also keeps
# it out of ldconfig's way. libpwal.a is stripped with strip --strip-debug and
# has no debug file: for a debuggable static library, link
# target/release/libpwal.a.
#
# Needs cargo, and objcopy and strip (binutils).
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

so=libpwal.so.$version
# Stripped copies are made in a scratch directory and then installed, so that
# a program running from an older copy in PREFIX keeps its mapped file.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
objcopy --only-keep-debug "$built/libpwal.so" "$stage/$so.debug"
# --add-gnu-debuglink records the debug file's name and CRC, so it reads the
# file from the stage; gdb later finds it by name in lib/.debug.
objcopy --strip-debug --add-gnu-debuglink="$stage/$so.debug" "$built/libpwal.so" "$stage/$so"
strip --strip-debug -o "$stage/libpwal.a" "$built/libpwal.a"
# 8 for a 64-bit library (ELF class 2), 4 for a 32-bit one (class 1):
# pwalConfigVersion.cmake turns away a CMake project of the other word size.
elf_class=$(od -An -tu1 -j4 -N1 "$built/libpwal.so" | tr -d ' ')
sizeof_void_p=$((elf_class * 4))

install -d "$prefix/lib/pkgconfig" "$prefix/lib/cmake/pwal" "$prefix/lib/.debug" "$prefix/include"
install -m 0755 "$stage/$so" "$prefix/lib/$so"
install -m 0644 "$stage/$so.debug" "$prefix/lib/.debug/$so.debug"
ln -sfn "$so" "$prefix/lib/libpwal.so.$major"
ln -sfn "libpwal.so.$major" "$prefix/lib/libpwal.so"
install -m 0644 "$stage/libpwal.a" "$prefix/lib/libpwal.a"
install -m 0644 "$root/include/pwal.h" "$prefix/include/pwal.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$root/pwal.pc.in" \
    >"$prefix/lib/pkgconfig/pwal.pc"
for f in pwalConfig.cmake pwalConfigVersion.cmake; do
    sed -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" \
        -e "s|@SIZEOF_VOID_P@|$sizeof_void_p|g" "$root/cmake/$f.in" >"$prefix/lib/cmake/pwal/$f"
done

# The pwal command (cli/): info, verify, dump, repair, bench; installed
# without debug info, like the library.
(cd "$root" && cargo build --release -p pwal-cli)
install -d "$prefix/bin"
objcopy --strip-debug "$built/pwal" "$stage/pwal"
install -m 0755 "$stage/pwal" "$prefix/bin/pwal"

echo "installed pwal $version under $prefix"
case "$prefix" in
/usr | /usr/local)
    if [[ -w /etc/ld.so.cache || ! -e /etc/ld.so.cache ]] && command -v ldconfig >/dev/null; then
        ldconfig
    fi
    ;;
*)
    echo "  build:  PKG_CONFIG_PATH=$prefix/lib/pkgconfig cc app.c \$(pkg-config --cflags --libs pwal)"
    echo "     or:  cmake -DCMAKE_PREFIX_PATH=$prefix ...   (find_package(pwal), pwal::pwal)"
    echo "  run:    LD_LIBRARY_PATH=$prefix/lib ./a.out   (or link with -Wl,-rpath,$prefix/lib)"
    ;;
esac
