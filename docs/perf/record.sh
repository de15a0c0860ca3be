#!/bin/sh
# Records the four warden profiles of docs/perf/README.md and draws their
# flamegraphs: docs/perf/record.sh <warden binary> <before|after>
#
# Needs perf, inferno (`cargo install inferno`) and the round-trip bench
# binary (`cargo bench -p warden-demo --bench roundtrip --no-run` prints it;
# pass it as ROUNDTRIP_BENCH). Each path: the bench's drive mode keeps one
# warden process busy with calls one after another; perf samples that
# process only, at 1999 Hz with DWARF call graphs, for RECORD_SECS seconds.
set -eu
bin=$1
tag=$2
bench=${ROUNDTRIP_BENCH:?the round-trip bench binary}
secs=${RECORD_SECS:-15}
out=$(dirname "$0")
work=${PERF_WORK:-/tmp/warden-perf}
mkdir -p "$work"
for path in stdio-allowed stdio-denied http-allowed http-denied; do
    [ -n "${DRAW_ONLY:-}" ] && break
    rm -f "$work/pid"
    ROUNDTRIP_DRIVE=$path ROUNDTRIP_DRIVE_SECS=$((secs + 5)) \
        ROUNDTRIP_PID_FILE="$work/pid" WARDEN_BIN="$bin" \
        "$bench" --bench >"$work/$tag-$path.drive" 2>&1 &
    driver=$!
    while [ ! -s "$work/pid" ]; do sleep 0.2; done
    sleep 1
    echo "$tag $path: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$work/$tag-$path.load"
    perf record -F 1999 --call-graph dwarf,16384 -e cpu-clock -p "$(cat "$work/pid")" \
        -o "$work/$tag-$path.data" -- sleep "$secs" 2>"$work/$tag-$path.record"
    wait "$driver"
    cat "$work/$tag-$path.drive"
done
# The flamegraphs, from the recordings (DRAW_ONLY=1 redraws without recording).
for path in stdio-allowed stdio-denied http-allowed http-denied; do
    command -v inferno-flamegraph >/dev/null || { echo "no inferno-flamegraph: rerun with DRAW_ONLY=1"; exit 0; }
    perf script -i "$work/$tag-$path.data" 2>/dev/null \
        | inferno-collapse-perf >"$work/$tag-$path.folded"
    inferno-flamegraph --title "warden $tag: $(tail -1 "$work/$tag-$path.drive")" \
        --minwidth 0.2 <"$work/$tag-$path.folded" >"$out/$tag-${path}.svg"
done
