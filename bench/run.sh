#!/bin/bash
# Container start-up benchmark: gureum-runtime vs crun vs runc.
#
# Times `RUNTIME run --bundle B ID` of one busybox bundle whose process is
# /bin/true (hyperfine, no shell), then measures the max RSS of each runtime
# with /usr/bin/time -f %M.  Run by hand as root; this is not a test.
#
# usage: bench/run.sh [-r RUNS] [-w WARMUP] [-m RSS_RUNS] [-k] [-O] [GUREUM]
#   GUREUM   gureum-runtime binary (also -g PATH or $GUREUM; default
#            ../build/src/runtime/gureum-runtime relative to bench/)
#   -r N     hyperfine runs per runtime (default 30)
#   -w N     hyperfine warmup runs (default 3)
#   -m N     /usr/bin/time runs for max RSS; the median is reported (default 5)
#   -k       keep the temporary directory (bundle, hyperfine JSON)
#   -O       skip measuring the per-run unshare+mount wrapper overhead
# Runtimes missing from $PATH, or failing a sanity run, are skipped.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
GUREUM=${GUREUM:-$BENCH_DIR/../build/src/runtime/gureum-runtime}
RUNS=30 WARMUP=3 RSS_RUNS=5 KEEP=0 OVERHEAD=1
ORIG_ARGS=("$@")
while getopts g:r:w:m:kOh opt; do
    case $opt in
        g) GUREUM=$OPTARG ;; r) RUNS=$OPTARG ;; w) WARMUP=$OPTARG ;;
        m) RSS_RUNS=$OPTARG ;; k) KEEP=1 ;; O) OVERHEAD=0 ;;
        *) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || { echo "bench: too many arguments" >&2; exit 2; }
[ $# -eq 0 ] || GUREUM=$1

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
command -v hyperfine >/dev/null || die "hyperfine not installed (apt-get install hyperfine)"
[ -x /usr/bin/time ] || die "/usr/bin/time not installed (apt-get install time)"
command -v python3 >/dev/null || die "python3 needed to read hyperfine's JSON"

# --- cgroup hybrid mode -----------------------------------------------------
# crun 1.8 refuses hybrid hosts (cgroup v1 controllers + cgroup2 at
# /sys/fs/cgroup/unified).  Instead of wrapping every crun call in
# unshare+mount, this whole script re-executes itself once in a private mount
# namespace where the unified hierarchy's cgroup.controllers is hidden, so every
# runtime sees the same pure-v1 view and no timed run carries wrapper cost.
CTRL=/sys/fs/cgroup/unified/cgroup.controllers
if [ -z "${BENCH_IN_NS:-}" ] && [ -e "$CTRL" ] &&
   [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
    export BENCH_IN_NS=1 GUREUM
    exec unshare -m --propagation private bash "$0" "${ORIG_ARGS[@]}"
fi
NS_NOTE="host mount namespace"
if [ -n "${BENCH_IN_NS:-}" ]; then
    mount --bind /dev/null "$CTRL" || die "cannot hide $CTRL"
    NS_NOTE="private mount namespace, $CTRL hidden (hybrid cgroups)"
fi

read -r LOAD1 _ < /proc/loadavg
if awk -v l="$LOAD1" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    echo "bench: warning: load average $LOAD1 on $(nproc) CPUs; timings will be noisy" >&2
fi

TMP=$(mktemp -d /tmp/gureum-bench.XXXXXX)
cleanup() { [ "$KEEP" = 1 ] && echo "bench: kept $TMP" >&2 || rm -rf "$TMP"; }
trap cleanup EXIT

# --- bundles ----------------------------------------------------------------
# $TMP/bundle runs /bin/true (the benchmark); $TMP/check echoes a marker so a
# runtime that exits 0 without running anything is caught.
make_bundle() { # DIR ARGS...
    # The repository's own bundle builder, so the benchmark runs what `make run` runs.
    "$REPO/scripts/mkbundle.sh" "$@" >/dev/null
}
make_bundle "$TMP/bundle" /bin/true
make_bundle "$TMP/check" /bin/echo gureum-bench-ok
BUNDLE_SRC=scripts/mkbundle.sh

# --- runtimes ---------------------------------------------------------------
NAMES=() BINS=()
add_runtime() { # NAME BINARY
    local name=$1 bin=$2 out
    if ! bin=$(command -v "$bin" 2>/dev/null); then
        echo "bench: skipping $name: not found" >&2; return
    fi
    bin=$(readlink -f "$bin")
    "$bin" delete --force "bench-check-$name" >/dev/null 2>&1 || true
    if ! out=$(timeout 30 "$bin" run --bundle "$TMP/check" "bench-check-$name" </dev/null 2>&1) ||
       [[ $out != *gureum-bench-ok* ]]; then
        echo "bench: skipping $name: sanity run failed: ${out:0:300}" >&2
        "$bin" delete --force "bench-check-$name" >/dev/null 2>&1 || true
        return
    fi
    "$bin" delete --force "bench-check-$name" >/dev/null 2>&1 || true
    NAMES+=("$name") BINS+=("$bin")
}
add_runtime gureum-runtime "$GUREUM"
add_runtime crun crun
add_runtime runc runc
[ ${#NAMES[@]} -gt 0 ] || die "no runtime passed the sanity run"

# --- timing -----------------------------------------------------------------
# One hyperfine invocation, no shell.  Every runtime gets a fixed id, and a
# --prepare step (untimed) force-deletes any leftover container of that id, so
# the timed command is exactly `RUNTIME run --bundle B ID` for all of them.
HF_ARGS=(-N --warmup "$WARMUP" --runs "$RUNS" --style basic --export-json "$TMP/hyperfine.json")
for i in "${!NAMES[@]}"; do
    id="bench-${NAMES[$i]}-$$"
    HF_ARGS+=(--prepare "sh -c '${BINS[$i]} delete --force $id >/dev/null 2>&1; exit 0'")
done
for i in "${!NAMES[@]}"; do
    id="bench-${NAMES[$i]}-$$"
    HF_ARGS+=(--command-name "${NAMES[$i]}" "${BINS[$i]} run --bundle $TMP/bundle $id")
done
echo "== hyperfine ($NS_NOTE; bundle: $BUNDLE_SRC)" >&2
hyperfine "${HF_ARGS[@]}" </dev/null >&2

# --- max RSS ----------------------------------------------------------------
# %M = ru_maxrss of the runtime process and the children it waited for
# (runc/crun init, the container's /bin/true): the peak of the biggest process.
RSS=()
for i in "${!NAMES[@]}"; do
    id="bench-rss-${NAMES[$i]}-$$" vals=()
    for _ in $(seq "$RSS_RUNS"); do
        "${BINS[$i]}" delete --force "$id" >/dev/null 2>&1 || true
        /usr/bin/time -f %M -o "$TMP/rss" "${BINS[$i]}" run --bundle "$TMP/bundle" "$id" </dev/null >/dev/null 2>&1 || true
        vals+=("$(tail -n1 "$TMP/rss")")
    done
    "${BINS[$i]}" delete --force "$id" >/dev/null 2>&1 || true
    RSS+=("$(printf '%s\n' "${vals[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')")
done

# --- wrapper overhead (informational) ---------------------------------------
# What a per-run `unshare -m sh -c 'mount --bind /dev/null ... && exec crun'`
# wrapper would add; this script avoids it by running everything in one namespace.
OVERHEAD_MS=""
if [ "$OVERHEAD" = 1 ] && [ -n "${BENCH_IN_NS:-}" ]; then
    hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style none --export-json "$TMP/overhead.json" \
        --command-name plain "true" \
        --command-name wrapped "unshare -m --propagation private sh -c 'mount --bind /dev/null $CTRL && exec true'" \
        </dev/null >/dev/null 2>&1 &&
    OVERHEAD_MS=$(python3 -c '
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print("%.2f" % ((r["wrapped"] - r["plain"]) * 1000))' "$TMP/overhead.json")
fi

# --- report -----------------------------------------------------------------
python3 - "$TMP/hyperfine.json" "$(IFS=,; echo "${RSS[*]}")" "$OVERHEAD_MS" "$NS_NOTE" "$BUNDLE_SRC" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
rss = sys.argv[2].split(",")
overhead, ns_note, bundle = sys.argv[3], sys.argv[4], sys.argv[5]
rows = []
for r, m in zip(results, rss):
    rows.append((r["command"], r["median"] * 1000, r["mean"] * 1000, r["stddev"] * 1000, m))
base = {n: med for n, med, *_ in rows}.get("crun")
def ratio(med):
    return "%.2f" % (med / base) if base else "n/a"
print()
print("%-16s %10s %14s %10s %14s" % ("runtime", "median ms", "mean±sd ms", "vs crun", "max RSS KiB"))
for n, med, mean, sd, m in rows:
    print("%-16s %10.2f %14s %10s %14s" % (n, med, "%.2f±%.2f" % (mean, sd), ratio(med), m))
print()
print("| runtime | median ms | mean ± σ ms | ratio to crun | max RSS KiB |")
print("|---|---:|---:|---:|---:|")
for n, med, mean, sd, m in rows:
    print("| %s | %.2f | %.2f ± %.2f | %s | %s |" % (n, med, mean, sd, ratio(med), m))
print()
print("`run --bundle B ID` of a busybox bundle running /bin/true, %d runs each; %s; bundle: %s."
      % (len(results[0]["times"]), ns_note, bundle))
if overhead:
    print("A per-run `unshare -m` + bind-mount wrapper (not used above) would add %s ms median." % overhead)
EOF
