#!/usr/bin/env bash
# Issue 20's before/after figures: callfleet bench run alternately against the old code (a
# worktree of BEFORE) and this checkout, ROUNDS times each, so a noisy machine spreads its
# noise over both; then the capacity ladder (several N in one run, callfleet beside the
# peer) on this checkout; then the table the README's performance section shows, with the
# range (min-max) of each figure over the rounds.
#
#   scripts/bench_isolation.sh [OUT_DIR]      (ROUNDS=3 BEFORE=1156bdb by default)
#
# Each run's JSON is kept in OUT_DIR (default bench-isolation-<UTC time>) beside the
# summary (table.md). On a host whose /root is closed to the workers' user, run with
# CALLFLEET_BENCH_WORKER_USER="" (bench/stack.py). Takes about 15 min with ROUNDS=3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
BEFORE=${BEFORE:-1156bdb}
OUT=${1:-bench-isolation-$(date -u +%Y%m%dT%H%M%SZ)}
OLD=${OLD_TREE:-/tmp/callfleet-before-$BEFORE}
mkdir -p "$OUT"
[ -d "$OLD" ] || git worktree add --detach "$OLD" "$BEFORE" >/dev/null
BENCH=(.venv/bin/callfleet bench)

run() {  # run NAME REPO ARGS...: one bench, its JSON in $OUT/NAME.json, its summary in NAME.txt
    local name=$1 repo=$2; shift 2
    echo "$(date -u +%H:%M:%S) $name" >&2
    "${BENCH[@]}" "$@" --repo "$repo" --out "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || echo "  $name failed (see $OUT/$name.txt)" >&2
}

# TABLE_ONLY=1: no run, only the table again from OUT_DIR's reports.
[ -n "${TABLE_ONLY:-}" ] && ROUNDS=0
for round in $(seq 1 "$ROUNDS"); do
    for side in before after; do
        repo=$([ "$side" = before ] && echo "$OLD" || pwd)
        run "pipecat-$side-$round" "$repo" --profile pipecat_echo --sessions 20 --seconds 10
        run "echo-$side-$round" "$repo" --sessions 20 --seconds 15
    done
done
[ -z "${TABLE_ONLY:-}" ] && run "capacity-after" "$(pwd)" --profile pipecat_echo --sessions 5,10,20,30 --seconds 10

# pool.merge_pages, where this host lets us switch its KSM thread on for the run (root):
# a 60 s window, since merging settles over seconds (longer while the calls keep both
# cores busy: ksmd runs niced) and PSS is read mid-window; the
# kernel thread's own CPU over the run is written beside it (it is no process of ours).
KSM=/sys/kernel/mm/ksm
if [ -z "${TABLE_ONLY:-}" ] && [ -w "$KSM/run" ]; then
    saved_run=$(cat "$KSM/run") saved_scan=$(cat "$KSM/pages_to_scan")
    echo 1 >"$KSM/run"
    echo 2000 >"$KSM/pages_to_scan"
    ksmd_ticks() { awk '{print $14 + $15}' "/proc/$(pgrep -x ksmd)/stat"; }
    before_ticks=$(ksmd_ticks)
    run "pipecat-after-ksm" "$(pwd)" --profile pipecat_echo --sessions 20 --seconds 60 --merge-pages
    echo "$(( $(ksmd_ticks) - before_ticks ))" >"$OUT/ksmd-ticks.txt"
    echo "$saved_scan" >"$KSM/pages_to_scan"
    echo "$saved_run" >"$KSM/run"
fi

.venv/bin/python - "$OUT" <<'EOF' | tee "$OUT/table.md"
"""The README table: each figure's range over the rounds, before and after, peer beside."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def load(pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(pattern)) if p.stat().st_size]


def get(report: dict, path: str):
    for key in path.split("."):
        if not isinstance(report, dict) or key not in report:
            return None
        report = report[key]
    return report


def span(reports: list[dict], path: str) -> str:
    values = [v for v in (get(r, path) for r in reports) if isinstance(v, (int, float))]
    if not values:
        return "n/a"
    lo, hi = min(values), max(values)
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


ROWS = [("CPU s per session-minute", "cpu_s_per_session_minute"),
        ("PSS MB per session, whole host", "pss_mb_per_session"),
        ("worker PSS MB in a call", "worker_pss_mb.in_call"),
        ("start alone p50 ms", "start_alone_ms.p50"),
        ("start burst p50 ms", "start_latency_ms.p50"), ("start burst p99 ms", "start_latency_ms.p99"),
        ("echo RTT p50 ms", "echo_rtt_ms.p50"), ("echo RTT p99 ms", "echo_rtt_ms.p99"),
        ("frames lost", "frames.lost"),
        ("supervisor CPU us per frame", "supervisor_cpu_us_per_frame"),
        ("forwarding floor us per frame", "forwarding_floor_us_per_frame")]

for kind, title in (("pipecat", "Pipecat echo, N=20, 10 s"), ("echo", "echo, N=20, 15 s")):
    before, after = load(f"{kind}-before-[0-9]*.json"), load(f"{kind}-after-[0-9]*.json")
    print(f"\n### {title} ({len(before)} + {len(after)} runs, alternating)\n")
    peer = kind == "pipecat"
    print("| | before | after |" + (" peer (before runs) | peer (after runs) |" if peer else ""))
    print("|---|---|---|" + ("---|---|" if peer else ""))
    for label, path in ROWS:
        row = f"| {label} | {span(before, path)} | {span(after, path)} |"
        if peer:
            row += f" {span(before, 'peer.' + path)} | {span(after, 'peer.' + path)} |"
        print(row)

ksm = load("pipecat-after-ksm.json")
if ksm:
    ticks = (out / "ksmd-ticks.txt").read_text().strip() if (out / "ksmd-ticks.txt").exists() else "?"
    print("\n### Pipecat echo, N=20, 60 s, pool.merge_pages on (KSM, 2000 pages per 20 ms)\n")
    print("| | callfleet | peer |")
    print("|---|---|---|")
    for label, path in ROWS[:9]:
        print(f"| {label} | {span(ksm, path)} | {span(ksm, 'peer.' + path)} |")
    print(f"\nksmd CPU over the whole run (both hosts): {ticks} ticks of 10 ms")

capacity = load("capacity-after.json")
if capacity:
    print("\n### Capacity, Pipecat echo (0 lost and echo RTT p99 <= 50 ms)\n")
    print("| N | callfleet RTT p99 / lost | peer RTT p99 / lost |")
    print("|---|---|---|")
    for run in capacity[0].get("runs", []):
        print(f"| {run['sessions']} | {get(run, 'echo_rtt_ms.p99')} / {get(run, 'frames.lost')} "
              f"| {get(run, 'peer.echo_rtt_ms.p99')} / {get(run, 'peer.frames.lost')} |")
EOF
