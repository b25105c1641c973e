#!/usr/bin/env bash
# Replay throughput beside its baseline, in one run on the same file.
#
#   bench/replay.sh [MEMBERS] [YEARS]      (default 100000 members, 3 years ≈ 1M events)
#
# Generates a seeded synthetic stream of the three programs (palier-gen), then times
#   (a) a plain scan: every line deserialized into serde::de::IgnoredAny (palier-bench scan)
#   (b) palier replay of the same file to a late --as-of, output to /dev/null
# and reports events/s, the ratio (b)/(a) and replay's peak RSS against the file size.
# Each is run three times; the best run of each counts (the machine is shared).
set -euo pipefail
cd "$(dirname "$0")/.."
members=${1:-100000}
years=${2:-3}
data=bench-data
mkdir -p "$data"
file="$data/events-${members}m-${years}y.jsonl"

cargo build --release -q -p palier -p palier-gen -p palier-bench
if [ ! -s "$file" ]; then
  ./target/release/palier-gen --program all --members "$members" --seed 42 --years "$years" --quiet > "$file"
fi
events=$(wc -l < "$file")
bytes=$(stat -c %s "$file")
as_of="2030-01-01T00:00:00Z"
programs=(--program programs/net-a-porter.toml --program programs/mr-porter.toml --program programs/perfone.toml)

best_scan=999999; best_replay=999999; peak_kb=0
for run in 1 2 3; do
  scan=$(./target/release/palier-bench scan "$file" | sed -E 's/.*seconds=([0-9.]+).*/\1/')
  /usr/bin/time -f "%e %M" -o /tmp/palier-bench-time ./target/release/palier replay "${programs[@]}" \
    --events "$file" --as-of "$as_of" > /dev/null 2> /tmp/palier-bench-stderr || {
      echo "replay failed:"; tail -3 /tmp/palier-bench-stderr; exit 1; }
  read -r replay kb < /tmp/palier-bench-time
  echo "run $run: scan ${scan}s, replay ${replay}s, replay peak RSS ${kb} KB"
  best_scan=$(python3 -c "print(min($best_scan, $scan))")
  best_replay=$(python3 -c "print(min($best_replay, $replay))")
  peak_kb=$(( kb > peak_kb ? kb : peak_kb ))
done
python3 - "$events" "$bytes" "$best_scan" "$best_replay" "$peak_kb" <<'PY'
import sys
events, size, scan, replay, kb = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"events: {events}, file: {size/1e6:.0f} MB")
print(f"scan (serde_json IgnoredAny): {events/scan:,.0f} events/s ({scan:.3f} s)")
print(f"palier replay:                {events/replay:,.0f} events/s ({replay:.3f} s)")
print(f"ratio replay/scan: {scan/replay:.1%} (goal at least 35%)")
print(f"replay peak RSS: {kb/1024:.0f} MiB = {kb*1024/size:.2f} x the file (goal under 3x)")
PY
