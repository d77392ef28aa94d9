#!/bin/bash
# VM start-up benchmark: gureum-vmm vs qemu-system-x86_64 -M microvm (KVM).
#
# Both boot the same tiny PVH payload (tests/guest/hello.elf), which reports
# success through the debug-exit port 0x501 at once, and exit. Times each with
# one hyperfine run (no shell), then measures max RSS with /usr/bin/time -f %M.
# Run by hand; this is not a test.
#
# usage: bench/vmm.sh [-r RUNS] [-w WARMUP] [-m RSS_RUNS] [-b BUILD] [-k]
#   -r N     hyperfine runs per VMM (default 20)
#   -w N     hyperfine warmup runs (default 3)
#   -m N     /usr/bin/time runs for max RSS; the median is reported (default 5)
#   -b DIR   meson build directory (default ../build relative to bench/; also $GUREUM_BUILD)
#   -k       keep the temporary directory (hyperfine JSON)
# gureum-vmm is $BUILD/src/vmm/gureum-vmm (or $GUREUM_VMM). QEMU is skipped
# with a message when qemu-system-x86_64 is not installed or fails its sanity run.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${GUREUM_BUILD:-$BENCH_DIR/../build}
RUNS=20 WARMUP=3 RSS_RUNS=5 KEEP=0
while getopts r:w:m:b:kh opt; do
    case $opt in
        r) RUNS=$OPTARG ;; w) WARMUP=$OPTARG ;; m) RSS_RUNS=$OPTARG ;;
        b) BUILD=$OPTARG ;; k) KEEP=1 ;;
        *) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { echo "bench: unexpected argument: $1" >&2; exit 2; }

VMM=${GUREUM_VMM:-$BUILD/src/vmm/gureum-vmm}
PAYLOAD=$BUILD/tests/guest/hello.elf

die() { echo "bench: $*" >&2; exit 1; }
[ -x "$VMM" ] || die "$VMM not found: build first (ninja -C build)"
[ -f "$PAYLOAD" ] || die "$PAYLOAD not found: build first (ninja -C build)"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not usable"
command -v hyperfine >/dev/null || die "hyperfine not installed (apt-get install hyperfine)"
[ -x /usr/bin/time ] || die "/usr/bin/time not installed (apt-get install time)"
command -v python3 >/dev/null || die "python3 needed to read hyperfine's JSON"

read -r LOAD1 _ < /proc/loadavg
if awk -v l="$LOAD1" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    echo "bench: warning: load average $LOAD1 on $(nproc) CPUs; timings will be noisy" >&2
fi

TMP=$(mktemp -d /tmp/gureum-vmm-bench.XXXXXX)
cleanup() { [ "$KEEP" = 1 ] && echo "bench: kept $TMP" >&2 || rm -rf "$TMP"; }
trap cleanup EXIT

# --- the commands -------------------------------------------------------------
# Each VMM: a name, its command, and the exit status that means "the payload
# reported success": gureum-vmm exits 0; QEMU's isa-debug-exit device exits
# with (value << 1) | 1, so 1.
NAMES=(gureum-vmm) CMDS=("$VMM --kernel $PAYLOAD --memory 64M --serial none") OKS=(0)
QEMU=$(command -v qemu-system-x86_64 || true)
if [ -n "$QEMU" ]; then
    NAMES+=(qemu-microvm)
    CMDS+=("$QEMU -M microvm,accel=kvm -cpu host,-arch-capabilities -m 64M -nodefaults -no-user-config -nographic -kernel $PAYLOAD -device isa-debug-exit,iobase=0x501,iosize=1")
    OKS+=(1)
else
    echo "bench: qemu-system-x86_64 not installed (Debian: qemu-system-x86): QEMU skipped" >&2
fi

# Sanity: each command boots the payload and gets its success report.
KEEP_IDX=()
for i in "${!NAMES[@]}"; do
    set +e
    # shellcheck disable=SC2086 # the command is a plain word list
    ${CMDS[$i]} >"$TMP/sanity.out" 2>&1 </dev/null
    rc=$?
    set -e
    if [ "$rc" = "${OKS[$i]}" ]; then
        KEEP_IDX+=("$i")
    else
        echo "bench: ${NAMES[$i]} failed its sanity run (exit $rc, want ${OKS[$i]}): skipped" >&2
        sed 's/^/    /' "$TMP/sanity.out" >&2
    fi
done
[ "${#KEEP_IDX[@]}" -gt 0 ] || die "nothing to measure"
[ "${KEEP_IDX[0]}" = 0 ] || die "gureum-vmm failed its sanity run"

# --- timing ---------------------------------------------------------------------
# One hyperfine invocation, no shell; -i because QEMU's success status is 1
# (every command was checked above).
HF_ARGS=(-N -i --warmup "$WARMUP" --runs "$RUNS" --export-json "$TMP/hf.json" --style basic)
for i in "${KEEP_IDX[@]}"; do
    HF_ARGS+=(-n "${NAMES[$i]}" "${CMDS[$i]}")
done
hyperfine "${HF_ARGS[@]}" >&2

# --- memory -----------------------------------------------------------------------
rss_median() { # COMMAND...
    local vals=() k
    for ((k = 0; k < RSS_RUNS; k++)); do
        /usr/bin/time -o "$TMP/rss" -f %M "$@" >/dev/null 2>&1 </dev/null || true
        vals+=("$(tail -n 1 "$TMP/rss")")
    done
    printf '%s\n' "${vals[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
: > "$TMP/rss.txt"
for i in "${KEEP_IDX[@]}"; do
    # shellcheck disable=SC2086
    echo "${NAMES[$i]} $(rss_median ${CMDS[$i]})" >> "$TMP/rss.txt"
done

# --- report -----------------------------------------------------------------------
python3 - "$TMP/hf.json" "$TMP/rss.txt" "$RUNS" <<'EOF'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
rss = dict(line.split() for line in open(sys.argv[2]))
runs = sys.argv[3]
base = res[0]["median"]
qemu = next((r["median"] for r in res if r["command"] == "qemu-microvm"), None)
rows = []
for r in res:
    ms = lambda v: f"{v * 1000:.2f}"
    ratio = f"{base / qemu:.2f}" if qemu and r["command"] == "gureum-vmm" else ("1.00" if r["command"] == "qemu-microvm" else "-")
    rows.append((r["command"], ms(r["median"]), f"{ms(r['mean'])} ± {ms(r['stddev'] or 0)}", ratio, rss[r["command"]]))
print(f"{'vmm':<14} {'median ms':>10} {'mean ± σ ms':>16} {'gureum/qemu':>12} {'max RSS KiB':>12}")
for name, med, mean, ratio, kib in rows:
    print(f"{name:<14} {med:>10} {mean:>16} {ratio:>12} {kib:>12}")
print()
print("| vmm | median ms | mean ± σ ms | gureum / qemu | max RSS KiB |")
print("|---|---:|---:|---:|---:|")
for name, med, mean, ratio, kib in rows:
    print(f"| {name} | {med} | {mean} | {ratio} | {kib} |")
print()
print(f"tests/guest/hello.elf (PVH, reports through port 0x501 at once), --memory 64M / -m 64M, {runs} runs each "
      "(hyperfine -N); max RSS: median of /usr/bin/time -f %M runs.")
EOF
