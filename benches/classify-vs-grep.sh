#!/usr/bin/env bash
# Classifier vs grep on one generated log, in the same run: wall time, throughput and peak
# RSS of `kitefix analyze` and of `grep -E -f` with the classifier's own patterns
# (`examples/ere-patterns`, translated to POSIX ERE). Also runs kitefix on a
# 64 MiB log to show that its peak RSS does not grow with the log.
#
#   benches/classify-vs-grep.sh            # 1 GiB
#   SIZE=268435456 benches/classify-vs-grep.sh
#
# Needs GNU time at /usr/bin/time and GNU grep. The log is written to $WORK (a temporary
# folder unless set) and removed at the end unless KEEP=1.
set -euo pipefail

SIZE=${SIZE:-1073741824}
SMALL=${SMALL:-67108864}
GREP_TIMEOUT=${GREP_TIMEOUT:-900}
WORK=${WORK:-$(mktemp -d)}
cd "$(dirname "$0")/.."

cleanup() { if [ "${KEEP:-0}" != 1 ]; then rm -f "$WORK/big.log" "$WORK/small.log"; fi; }
trap cleanup EXIT

# KITEFIX_BIN_DIR: a folder holding already built `kitefix`, `examples/synth-log` and
# `examples/ere-patterns`.
if [ -n "${KITEFIX_BIN_DIR:-}" ]; then
    BIN=$KITEFIX_BIN_DIR
else
    cargo build --release --quiet --bin kitefix --example synth-log --example ere-patterns
    BIN=${CARGO_TARGET_DIR:-target}/release
fi
"$BIN/examples/synth-log" "$SIZE" > "$WORK/big.log"
"$BIN/examples/synth-log" "$SMALL" > "$WORK/small.log"
"$BIN/examples/ere-patterns" > "$WORK/patterns.ere"
echo "patterns: $(wc -l < "$WORK/patterns.ere") (POSIX ERE)"

# measure LABEL FILE CMD...: prints seconds, MB/s and peak RSS from GNU time -v.
measure() {
    local label=$1 file=$2
    shift 2
    local bytes status=0
    bytes=$(stat -c %s "$file")
    /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>/dev/null || status=$?
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    local secs
    secs=$(echo "$wall" | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    awk -v l="$label" -v b="$bytes" -v s="$secs" -v r="$rss" -v st="$status" 'BEGIN {
        printf "%-34s %8.1f MB in %7.2f s = %7.1f MB/s, peak RSS %7.1f MiB%s\n",
            l, b / 1e6, s, (s > 0 ? b / 1e6 / s : 0), r / 1024, (st == 124 ? " (timed out)" : "") }'
}

measure "kitefix analyze ($((SMALL >> 20)) MiB)" "$WORK/small.log" "$BIN/kitefix" analyze --format json "$WORK/small.log"
measure "kitefix analyze ($((SIZE >> 20)) MiB)" "$WORK/big.log" "$BIN/kitefix" analyze --format json "$WORK/big.log"
grep -o '"rule": "[^"]*"' "$WORK/out.txt" || true
measure "grep -E -c -f patterns" "$WORK/big.log" timeout "$GREP_TIMEOUT" env LC_ALL=C grep -E -c -f "$WORK/patterns.ere" "$WORK/big.log"
echo "grep matching lines: $(cat "$WORK/out.txt")"
