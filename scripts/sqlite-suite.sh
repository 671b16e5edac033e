#!/usr/bin/env bash
# Runs SQLite's own TCL test suite on the pwal VFS (docs/TESTING.md, "SQLite's
# own test suite").
#
#   scripts/sqlite-suite.sh --set ci          # the CI subset (tests/sqlite-suite/ci.txt)
#   scripts/sqlite-suite.sh --set full        # every test/*.test but the drivers
#   scripts/sqlite-suite.sh --files wal.test,pager1.test
#
# Options: --jobs N (parallel test files, default: the number of cores),
# --timeout S (per test file and VFS, default 300 for ci, 150 otherwise: the
# expected list's "slow" files outlast 150 s under pwal),
# --scratch DIR (where the tests run, default target/sqlite-suite/scratch;
# a tmpfs such as /dev/shm/... makes the many opens of the fault tests cheap),
# --results FILE (also write the markdown summary there, e.g.
# docs/SQLITE-SUITE.md), --no-check (report, but exit 0 on divergences),
# --summarize (build and run nothing: compare the outputs the last run left,
# the files of a run cut short included, against the expected list as it is now).
#
# It fetches Debian's sqlite3 source package once (apt-get source: needs a
# deb-src line for the installed suite, dpkg-dev, and tcl8.6-dev to build;
# .ci/run installs them) into ${PWAL_SQLITE_SUITE_CACHE:-${XDG_CACHE_HOME:-
# $HOME/.cache}/pwal-sqlite-suite}, compiles SQLite's testfixture objects
# there once (with -DSQLITE_ENABLE_BATCH_ATOMIC_WRITE
# -DSQLITE_EXTRA_INIT=pwal_suite_init), and links two testfixtures from them
# under target/sqlite-suite/:
#   testfixture-default  SQLite as it is (pwal_suite_init does nothing);
#   testfixture-pwal     examples-c/sqlite/pwalvfs.c compiled in, with the
#                        repository's fresh target/release/libpwal.a, and
#                        made the default VFS by tests/sqlite-suite/pwal_default.c.
# Each test file runs under each testfixture in its own scratch directory
# (removed after it; its output stays in target/sqlite-suite/run/<vfs>/<file>/),
# with a timeout. A file whose
# outcome differs between the two runs is run once more under both; it is
# divergent when it differs both times the same way (one that differs only
# once is reported as unstable). The script exits non-zero when a divergent
# file is not in tests/sqlite-suite/expected-divergences.txt, or when a listed
# file that ran no longer diverges (the list is stale).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
suite_dir=$repo/tests/sqlite-suite
out_root=${PWAL_SQLITE_SUITE_OUT:-$repo/target/sqlite-suite}
cache=${PWAL_SQLITE_SUITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pwal-sqlite-suite}

die() { echo "sqlite-suite: $*" >&2; exit 2; }
log() { echo "sqlite-suite: $*" >&2; }

# ---- one test file under one testfixture (run by xargs below) ----
# Runs it in the empty scratch directory SCRATCH, then keeps its output in
# RESULTS/out.txt and writes RESULTS/result: "<status> <errors> <tests>
# <seconds>", status one of pass, fail, timeout, crash. The scratch directory
# goes (some tests leave large databases).
if [[ ${1:-} == --run-one ]]; then
    fixture=$2 testfile=$3 results=$4 scratch=$5 timeout_s=$6
    rm -rf "$results" "$scratch"
    mkdir -p "$results" "$scratch"
    cd "$scratch"
    start=$SECONDS
    set +e
    timeout -k 10 "$timeout_s" "$fixture" "$testfile" </dev/null >"$results/out.txt" 2>&1
    rc=$?
    set -e
    secs=$((SECONDS - start))
    cd /
    rm -rf "$scratch"
    summary=$(grep -aE '^[0-9]+ errors out of [0-9]+ tests' "$results/out.txt" | tail -1 || true)
    errors=$(awk '{print $1}' <<<"$summary")
    tests=$(awk '{print $5}' <<<"$summary")
    if ((rc == 124 || rc == 137)); then
        status=timeout
    elif ((rc > 128)); then
        status=crash
    elif ((rc == 0)) && [[ $errors == 0 || -z $summary ]]; then
        # No summary line and exit 0: the file returned before running
        # anything (alias.test, the win32*.test files off Windows).
        status=pass
    else
        status=fail
    fi
    echo "$status ${errors:--} ${tests:--} $secs" >"$results/result"
    exit 0
fi

set_name=
files_arg=
jobs=$(nproc)
timeout_s=
results_file=
check=1
summarize=0
scratch_root=$out_root/scratch
while (($#)); do
    case $1 in
    --set) set_name=${2:?--set needs ci or full}; shift 2 ;;
    --files) files_arg=${2:?--files needs a comma-separated list}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
    --results) results_file=${2:?--results needs a file}; shift 2 ;;
    --no-check) check=0; shift ;;
    --scratch) scratch_root=${2:?--scratch needs a directory}; shift 2 ;;
    --summarize) summarize=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -n $set_name || -n $files_arg ]] || die "say which tests: --set ci, --set full or --files a.test,b.test"
[[ -z $set_name || -z $files_arg ]] || die "--set and --files exclude each other"
[[ -z $set_name || $set_name == ci || $set_name == full ]] || die "unknown set '$set_name' (ci or full)"
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "--jobs wants a positive number, not '$jobs'"
if [[ -z $timeout_s ]]; then
    # The expected list's "slow" files are slow against 150 s.
    if [[ $set_name == ci ]]; then timeout_s=300; else timeout_s=150; fi
fi
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds, not '$timeout_s'"
for tool in tclsh8.6 gcc make timeout; do
    command -v "$tool" >/dev/null || die "needs $tool (tcl8.6-dev, build-essential, coreutils)"
done
[[ -f /usr/include/tcl8.6/tcl.h ]] || die "needs Tcl's headers: apt-get install tcl8.6-dev"

# ---- the source: Debian's sqlite3 source package, fetched once ----
mkdir -p "$cache"
src=$(find "$cache/src" -mindepth 2 -maxdepth 2 -name manifest.uuid -printf '%h\n' 2>/dev/null | head -1 || true)
if [[ -z $src ]]; then
    command -v dpkg-source >/dev/null || die "needs dpkg-source to unpack the source: apt-get install dpkg-dev"
    version=$(apt-cache showsrc sqlite3 2>/dev/null | awk '/^Version:/ {print $2; exit}')
    [[ -n $version ]] || die "apt knows no source package sqlite3: add a deb-src line for your suite \
(e.g. /etc/apt/sources.list.d/*.sources with 'Types: deb-src', as .ci/run does), then apt-get update"
    log "fetching Debian's sqlite3 $version source into $cache/src"
    tmp=$(mktemp -d "$cache/fetch.XXXXXX")
    (cd "$tmp" && apt-get source -qq "sqlite3=$version" >fetch.log 2>&1) ||
        { cat "$tmp/fetch.log" >&2; rm -rf "$tmp"; die "apt-get source sqlite3=$version failed"; }
    unpacked=$(find "$tmp" -mindepth 2 -maxdepth 2 -name manifest.uuid -printf '%h\n' | head -1)
    [[ -n $unpacked ]] || die "apt-get source sqlite3 left no source tree in $tmp"
    mkdir -p "$cache/src"
    rm -rf "$cache/src/${unpacked##*/}"
    mv "$unpacked" "$cache/src/"
    rm -rf "$tmp"
    src=$cache/src/${unpacked##*/}
fi
sqlite_version=$(cat "$src/VERSION")

if ((!summarize)); then
# ---- the testfixture objects, compiled once per source and flags ----
# Set by the generated flags.sh: compiler and flags, sources, libraries.
cflags=() sources=() libs=()
extra_defs=(-DSQLITE_ENABLE_BATCH_ATOMIC_WRITE -DSQLITE_EXTRA_INIT=pwal_suite_init)
key=$(printf '%s\n' "$src" "${extra_defs[*]}" "$(gcc --version | head -1)" | sha256sum | cut -c1-12)
build=$cache/build-${src##*/}-$key
if [[ ! -f $build/objects.ok ]]; then
    log "building SQLite $sqlite_version's testfixture objects in $build"
    rm -rf "$build"
    mkdir -p "$build/obj"
    (cd "$build" && "$src/configure" --with-tcl=/usr/lib/tcl8.6 --disable-shared >configure.log 2>&1) ||
        { tail -20 "$build/configure.log" >&2; die "configure failed ($build/configure.log)"; }
    (cd "$build" && make -s sqlite3.c >make.log 2>&1) ||
        { tail -20 "$build/make.log" >&2; die "make sqlite3.c failed ($build/make.log)"; }
    # The testfixture rule's own flags and sources, read from its Makefile.
    # shellcheck disable=SC2016 # make's $, not the shell's
    printf 'print-%%: ; @echo $($*)\n' >"$build/print.mk"
    mkvar() { make -s -C "$build" -f Makefile -f print.mk "print-$1"; }
    {
        echo "cflags=($(mkvar TCC) -DSQLITE_NO_SYNC=1 $(mkvar TEMP_STORE) $(mkvar TESTFIXTURE_FLAGS) ${extra_defs[*]})"
        echo "sources=($(mkvar TESTFIXTURE_SRC))"
        echo "libs=($(mkvar LIBTCL) $(mkvar TLIBS))"
    } >"$build/flags.sh"
    # shellcheck disable=SC1091
    source "$build/flags.sh"
    printf '%s\n' "${cflags[@]:1}" >"$build/cflags.rsp"
    # shellcheck disable=SC2016 # expanded by sh -c
    for s in "${sources[@]}"; do
        o=${s#"$src"/}
        o=${o//\//_}
        printf '%s\0%s\0' "$s" "$build/obj/${o%.c}.o"
    done | (cd "$build" && xargs -0 -n2 -P"$jobs" sh -c 'exec "$0" @cflags.rsp -c "$1" -o "$2"' "${cflags[0]}") \
        >"$build/compile.log" 2>&1 || { grep -m20 -i error "$build/compile.log" >&2; die "compiling the testfixture failed ($build/compile.log)"; }
    touch "$build/objects.ok"
fi
# shellcheck disable=SC1091
source "$build/flags.sh"
objects=()
for s in "${sources[@]}"; do
    o=${s#"$src"/}
    o=${o//\//_}
    objects+=("$build/obj/${o%.c}.o")
done

# ---- the two testfixtures ----
log "building libpwal (cargo build --release --lib) and the two testfixtures"
(cd "$repo" && cargo build --release --lib --quiet)
bin=$out_root/bin
mkdir -p "$bin"
inc=(-I"$build" -I"$src/src" -I"$repo/include")
gcc -O2 -g -std=c99 -Wall -Wextra -Werror -DSQLITE_CORE -DPWAL_SUITE_PLAIN "${inc[@]}" \
    -c "$suite_dir/pwal_default.c" -o "$bin/pwal_default_plain.o"
gcc -O2 -g -std=c99 -Wall -Wextra -Werror -DSQLITE_CORE "${inc[@]}" \
    -c "$suite_dir/pwal_default.c" -o "$bin/pwal_default.o"
gcc -O2 -g -std=c99 -Wall -Wextra -Werror -DSQLITE_CORE "${inc[@]}" \
    -c "$repo/examples-c/sqlite/pwalvfs.c" -o "$bin/pwalvfs.o"
gcc -o "$bin/testfixture-default" "${objects[@]}" "$bin/pwal_default_plain.o" "${libs[@]}" -lpthread -ldl
gcc -o "$bin/testfixture-pwal" "${objects[@]}" "$bin/pwal_default.o" "$bin/pwalvfs.o" \
    "$repo/target/release/libpwal.a" "${libs[@]}" -lpthread -ldl -lm
# The pwal one must really run on pwal: its default VFS is named "pwal".
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
cat >"$probe/probe.tcl" <<'EOF'
sqlite3 db probe.db
db eval {CREATE TABLE t(x); INSERT INTO t VALUES(1); INSERT INTO t VALUES(2)}
puts "[lindex [sqlite3_vfs_list] 0] [db one {SELECT count(*) FROM t}] [file isdirectory .pwal-shared-pwal]"
db close
EOF
got=$(cd "$probe" && "$bin/testfixture-pwal" probe.tcl)
[[ $got == "pwal 2 1" ]] || die "testfixture-pwal does not run on the pwal VFS (probe said '$got')"
echo 'puts [lindex [sqlite3_vfs_list] 0]' >"$probe/probe.tcl"
got=$(cd "$probe" && "$bin/testfixture-default" probe.tcl)
[[ $got == unix ]] || die "testfixture-default's default VFS is '$got', not unix"
fi

# ---- the test files ----
# The files that only run other files (permutations.test's own exclusions).
drivers=" all.test async.test quick.test veryquick.test memleak.test permutations.test soak.test "
drivers+=" fts3.test mallocAll.test rtree.test full.test extraquick.test session.test rbu.test "
files=()
if [[ $set_name == ci ]]; then
    while read -r f _; do
        [[ -z $f || $f == \#* ]] || files+=("$f")
    done <"$suite_dir/ci.txt"
elif [[ $set_name == full ]]; then
    for f in "$src"/test/*.test; do
        f=${f##*/}
        [[ $drivers == *" $f "* ]] || files+=("$f")
    done
else
    IFS=, read -r -a files <<<"$files_arg"
fi
for f in "${files[@]}"; do
    [[ -f $src/test/$f ]] || die "no test file $f in $src/test"
done
((${#files[@]})) || die "no test files to run"

run=$out_root/run
label=${set_name:+--set $set_name}
label=${label:---files $files_arg}
bin=$out_root/bin

# Runs the given files under both testfixtures, each file's two runs side by side.
run_files() {
    local f
    # shellcheck disable=SC2016 # expanded by sh -c
    for f in "$@"; do
        for v in default pwal; do
            printf '%s\0' "$bin/testfixture-$v" "$src/test/$f" "$run/$v/$f" "$scratch_root/$v/$f"
        done
    done | xargs -0 -n4 -P"$jobs" sh -c 'exec "$0" --run-one "$1" "$2" "$3" "$4" '"$timeout_s" "$0"
}
status_of() { awk '{print $1}' "$run/$1/$2/result" 2>/dev/null || echo missing; }

if ((!summarize)); then
    rm -rf "$run"
    mkdir -p "$run/default" "$run/pwal"
    mkdir -p "$scratch_root"
    fs=$(stat -f -c %T "$scratch_root")
    echo "$label|$jobs|$timeout_s|$(date -u +%Y-%m-%d)|$fs" >"$run/params"
    log "running ${#files[@]} test files ($label) under both VFSes, $jobs at a time, timeout ${timeout_s}s each"
    start=$SECONDS
    run_files "${files[@]}"
    echo $((SECONDS - start)) >"$run/first-pass-seconds"
    # Files whose outcome differs: run once more, keeping the first outcome.
    again=()
    for f in "${files[@]}"; do
        d=$(status_of default "$f") p=$(status_of pwal "$f")
        if { [[ $d == pass ]] && [[ $p != pass ]]; } || { [[ $d != pass ]] && [[ $p == pass ]]; }; then
            again+=("$f")
            for v in default pwal; do mv "$run/$v/$f" "$run/$v/$f.first"; done
        fi
    done
    if ((${#again[@]})); then
        log "running the ${#again[@]} files whose outcome differed once more"
        run_files "${again[@]}"
    fi
fi
[[ -f $run/params ]] || die "no run to summarize in $run"
IFS='|' read -r label jobs timeout_s run_date fs <"$run/params"
first_secs=$(cat "$run/first-pass-seconds" 2>/dev/null || echo "(cut short)")
# The files that ran (a run cut short ran some), and the first outcome of
# those run twice.
declare -A first
ran=() again=()
for f in "${files[@]}"; do
    # A second run cut short: its first outcome is the outcome.
    if [[ -d $run/default/$f.first && ! ( -f $run/default/$f/result && -f $run/pwal/$f/result ) ]]; then
        for v in default pwal; do rm -rf "${run:?}/$v/$f" && mv "$run/$v/$f.first" "$run/$v/$f"; done
    fi
    if [[ -d $run/default/$f.first ]]; then
        again+=("$f")
        first[$f]="$(status_of default "$f.first") $(status_of pwal "$f.first")"
    fi
    if [[ -f $run/default/$f/result && -f $run/pwal/$f/result ]]; then ran+=("$f"); fi
done
not_run=$((${#files[@]} - ${#ran[@]}))
files=("${ran[@]}")

# ---- compare ----
declare -A expected
while IFS= read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    f=${line%%[[:space:]]*}
    reason=${line#"$f"}
    reason=${reason#"${reason%%[![:space:]]*}"}
    expected[$f]=$reason
done <"$suite_dir/expected-divergences.txt"

# dir DEFAULT PWAL: which VFS alone passed (default, pwal), or none.
dir() {
    if [[ $1 == pass && $2 != pass ]]; then echo default
    elif [[ $1 != pass && $2 == pass ]]; then echo pwal
    else echo none; fi
}
declare -A rerun
for f in "${again[@]}"; do rerun[$f]=1; done
both=() neither=() only_default=() only_pwal=() unstable=() problems=()
for f in "${files[@]}"; do
    d=$(status_of default "$f") p=$(status_of pwal "$f")
    now=$(dir "$d" "$p")
    if [[ -n ${rerun[$f]+x} ]]; then
        # shellcheck disable=SC2086 # two words
        before=$(dir ${first[$f]})
        if [[ $now != "$before" ]]; then unstable+=("$f"); continue; fi
    fi
    case $now in
    default) only_default+=("$f") ;;
    pwal) only_pwal+=("$f") ;;
    *) if [[ $d == pass ]]; then both+=("$f"); else neither+=("$f"); fi ;;
    esac
done
# Files that pass under both but ran far fewer tests under pwal: most skip
# themselves where batch atomic writes are on (SQLite's atomic_batch_write
# check), or skip a part that needs WAL.
fewer=()
for f in "${both[@]}"; do
    read -r _ _ td _ <"$run/default/$f/result"
    read -r _ _ tp _ <"$run/pwal/$f/result"
    if [[ $td =~ ^[0-9]+$ && $tp =~ ^[0-9]+$ ]] && ((tp * 2 < td)); then fewer+=("$f $tp/$td"); fi
done
# Files that pass under both while some of their child processes (crashsql,
# a second testfixture) could not open the database through pwal, because
# the parent had a database of the directory open: those cases passed
# without testing anything (a crash test cannot tell a child that failed to
# open from one that crashed).
vacuous=()
for f in "${both[@]}"; do
    n=$(grep -ac 'testfixture-pwal: unable to open database file' "$run/pwal/$f/out.txt" || true)
    ((n == 0)) || vacuous+=("$f $n")
done
for f in "${only_default[@]}" "${only_pwal[@]}"; do
    [[ -n ${expected[$f]+x} ]] || problems+=("$f diverges and is not in tests/sqlite-suite/expected-divergences.txt")
done
# A listed file that did not diverge makes the list stale, unless its
# outcome changed between its two runs, or its reason is only time (a
# "slow:" file may finish within the timeout on a quieter machine).
for f in "${files[@]}"; do
    if [[ -n ${expected[$f]+x} && " ${only_default[*]} ${only_pwal[*]} ${unstable[*]} " != *" $f "* &&
        ${expected[$f]} != slow:* ]]; then
        problems+=("$f is in tests/sqlite-suite/expected-divergences.txt but did not diverge: the list is stale")
    fi
done

# One line per file: "<file> <default> <pwal>", outcome "status/errors/tests/seconds".
outcome() { local r; r=$(cat "$run/$1/$2/result" 2>/dev/null || echo "missing - - -"); tr ' ' / <<<"$r"; }
for f in "${files[@]}"; do echo "$f $(outcome default "$f") $(outcome pwal "$f")"; done >"$run/outcomes.txt"

# Failing cases of a file's pwal run, from its output ("! name expected: ...").
failing_cases() {
    local out=$run/$1/$2/out.txt cases abort list
    # The suite's own list of failed cases, or (a file that stopped) the
    # cases that printed an expected result.
    cases=$(sed -n 's/^!Failures on these tests: //p' "$out" | tail -1)
    [[ -n $cases ]] || cases=$(grep -aoE '^! [^ ]+' "$out" | cut -c3- | awk '!seen[$0]++' | paste -sd' ' || true)
    read -r -a list <<<"$cases"
    cases="${list[*]:0:6}"
    ((${#list[@]} <= 6)) || cases+=" ..."
    if ! grep -aqE '^[0-9]+ errors out of [0-9]+ tests' "$out"; then
        # The file stopped: the Tcl error, and the test and procedure it was in.
        abort=$(awk '/^    while executing$/ {print prev; exit} {prev=$0}' "$out" | sed "s|^$bin/||" | cut -c1-120)
        local at proc
        at=$(grep -aE '^[A-Za-z0-9_.-]+\.\.\.' "$out" | tail -1 | sed 's/\.\.\..*//')
        proc=$(grep -aoE '\(procedure "[^"]+"' "$out" | tail -1 | cut -d'"' -f2)
        cases+="${cases:+; }stopped${at:+ after $at}: ${abort:-no summary line}${proc:+ (in $proc)}"
    fi
    # Table cells: no pipes.
    echo "${cases//|/\\|}"
}
# "a.test 3" "b.test 4" -> "a.test (3), b.test (4)"
listing() {
    local item out=
    for item in "$@"; do out+="${out:+, }${item%% *} (${item#* })"; done
    echo "$out"
}
summary() {
    local f
    echo "# SQLite's test suite on the pwal VFS: last result"
    echo
    echo "Written by \`scripts/sqlite-suite.sh $label\` (docs/TESTING.md, \"SQLite's own"
    echo "test suite\"): SQLite $sqlite_version (Debian's \`sqlite3\` source package, \`${src##*/}\`),"
    echo "each test file under the same testfixture built twice, once with the unix VFS as the"
    echo "default and once with the \`pwal\` VFS as the default; ${jobs} files at a time, a"
    echo "timeout of ${timeout_s} s per file and VFS, in scratch directories on $fs;"
    echo "${first_secs} s for the first pass, on $run_date."
    echo
    echo "| outcome | files |"
    echo "| --- | ---: |"
    echo "| run | ${#files[@]} |"
    ((not_run == 0)) || echo "| not run (the run was cut short) | $not_run |"
    echo "| pass under both | ${#both[@]} |"
    echo "| fail under both | ${#neither[@]} |"
    echo "| pass only under the default VFS | ${#only_default[@]} |"
    echo "| pass only under pwal | ${#only_pwal[@]} |"
    echo "| unstable (differed in one of two runs) | ${#unstable[@]} |"
    echo "| of those passing under both: ran under half as many tests under pwal | ${#fewer[@]} |"
    echo "| of those passing under both: child processes that could not open under pwal | ${#vacuous[@]} |"
    echo
    if ((${#only_default[@]})); then
        echo "## Pass only under the default VFS"
        echo
        echo "| file | pwal run (status, errors/tests) | failing cases under pwal | reason |"
        echo "| --- | --- | --- | --- |"
        for f in "${only_default[@]}"; do
            read -r s e t _ <"$run/pwal/$f/result"
            echo "| $f | $s $e/$t | $(failing_cases pwal "$f") | ${expected[$f]:-**not in the expected list**} |"
        done
        echo
    fi
    if ((${#only_pwal[@]})); then
        echo "## Pass only under pwal"
        echo
        echo "| file | default run (status, errors/tests) | failing cases under the default VFS | reason |"
        echo "| --- | --- | --- | --- |"
        for f in "${only_pwal[@]}"; do
            read -r s e t _ <"$run/default/$f/result"
            echo "| $f | $s $e/$t | $(failing_cases default "$f") | ${expected[$f]:-**not in the expected list**} |"
        done
        echo
    fi
    if ((${#neither[@]})); then
        echo "## Fail under both"
        echo
        echo "Status and errors/tests under the default VFS, then under pwal. The"
        echo "script does not compare which cases fail: a file failing more cases"
        echo "under pwal is worth a look."
        echo
        for f in "${neither[@]}"; do
            read -r s1 e1 t1 _ <"$run/default/$f/result"
            read -r s2 e2 t2 _ <"$run/pwal/$f/result"
            echo "- $f: $s1 $e1/$t1, $s2 $e2/$t2"
        done
        echo
    fi
    if ((${#fewer[@]})); then
        echo "## Pass under both, with under half the tests under pwal"
        echo
        echo "Most skip themselves where the VFS offers batch atomic writes"
        echo "(\`atomic_batch_write\` in SQLite's tests), or skip a part that needs WAL;"
        echo "tests run under pwal / under the default VFS:"
        echo
        listing "${fewer[@]}"
        echo
    fi
    if ((${#vacuous[@]})); then
        echo "## Pass under both, with child processes that could not open under pwal"
        echo
        echo "One process per directory: a child testfixture (\`crashsql\`, a second"
        echo "client) started while the parent had a database of the directory open"
        echo "could not open it, and the cases it ran in passed without testing"
        echo "anything (a crash test cannot tell a failed open from a crash). Child"
        echo "processes that failed so, per file:"
        echo
        listing "${vacuous[@]}"
        echo
    fi
    if ((${#unstable[@]})); then
        echo "## Unstable"
        echo
        echo "Outcome (default, pwal) in the first run, then the second:"
        echo
        for f in "${unstable[@]}"; do
            echo "- $f: ${first[$f]}, $(status_of default "$f") $(status_of pwal "$f")"
        done
        echo
    fi
    if ((${#problems[@]})); then
        echo "## Against tests/sqlite-suite/expected-divergences.txt"
        echo
        for f in "${problems[@]}"; do echo "- $f"; done
        echo
    fi
}
summary >"$run/summary.md"
[[ -z $results_file ]] || cp "$run/summary.md" "$results_file"
cat "$run/summary.md"
echo "outputs: $run/{default,pwal}/<file>/out.txt; one line per file: $run/outcomes.txt"
echo "sqlite-suite: ${#files[@]} files, ${#both[@]} pass both, ${#neither[@]} fail both," \
    "${#only_default[@]} pass only default, ${#only_pwal[@]} pass only pwal, ${#unstable[@]} unstable," \
    "${#problems[@]} not as expected"
if ((${#problems[@]})) && ((check)); then
    printf 'sqlite-suite: %s\n' "${problems[@]}" >&2
    exit 1
fi
exit 0
