#!/usr/bin/env bash
# The service benchmarks, each beside its baseline in one run on this machine.
#
#   bench/service.sh [quick|full] [BENCH…]    (default: full, every benchmark)
#
# Builds palier-bench in release and runs, in one process each, palier served in-process
# (palier_server::start on a fresh store) and its baseline, measured by the same load
# tool (fixed concurrency, fixed duration; requests/s, p50/p99):
#
#   ingest-single      1 client posting one event per request   vs a raw SQLite loop, 1 row per transaction
#   ingest-concurrent  64 clients posting one event per request vs palier's own single-client rate
#   import             import_lines in batches of 5 000         vs a raw batched insert (5 000 rows per transaction)
#   read               GET /v1/members/{id}, 64 connections     vs an axum hello-world (GET / -> "hello")
#   postgres           16 clients on PostgreSQL                 vs 16 raw single-row insert loops
#   late               a late event for a 1 000-event member    vs an in-order event (median of many)
#   quote              POST /v1/checkout/quote, 5-line basket + FIRST10, 64 connections
#                                                               vs an axum hello-world (GET / -> "hello")
#   hold-commit        64 clients, each looping a points hold (POST /v1/checkout/holds) then
#                      the order.placed committing it, on SQLite and on PostgreSQL
#                                                               vs raw single-row insert loops (SQLite: 1 loop,
#                                                                  PostgreSQL: 64), 2 rows a hold+commit
#
# Each pair runs 3 times, alternating (palier, baseline, palier, ...); the best run of
# each counts (the machine is shared and noisy). `postgres` and `hold-commit` need a
# PostgreSQL server at $PALIER_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432,
# trust auth); they create and drop databases of their own.
#
# quick: 3-second load runs and smaller stores (about 2 minutes after the build); quote
#        and hold-commit run once each, about 10 seconds apiece;
# full:  10-second load runs, 1 000 000 events imported, 100 000 members read,
#        1 000 000 other members around the late event's member, 100 000 members
#        quoted (about 17 minutes;
#        the late benchmark alone preloads 4.6 M events and holds about 7 GB).
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-full}
shift || true
case "$mode" in
  quick)
    timing=(--seconds 3 --warmup 0.5 --runs 3)
    single=(--members 20000)
    concurrent=(--members 50000)
    import=(--events 200000)
    read=(--members 20000)
    postgres=(--members 20000)
    late=(--members 100000 --reps 31)
    quote=(--members 10000)
    hold_commit=(--members-per-client 50)
    checkout_timing=(--seconds 4 --warmup 0.5 --runs 1)
    hold_timing=(--seconds 2 --warmup 0.5 --runs 1)
    ;;
  full)
    timing=(--seconds 10 --warmup 1 --runs 3)
    single=(--members 50000)
    concurrent=(--members 100000)
    import=(--events 1000000)
    read=(--members 100000)
    postgres=(--members 50000)
    late=(--members 1000000 --reps 101)
    quote=(--members 100000)
    hold_commit=(--members-per-client 50)
    checkout_timing=("${timing[@]}")
    hold_timing=("${timing[@]}")
    ;;
  *)
    echo "usage: bench/service.sh [quick|full] [ingest-single|ingest-concurrent|import|read|postgres|late|quote|hold-commit …]" >&2
    exit 2
    ;;
esac
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(ingest-single ingest-concurrent import read postgres late quote hold-commit)

echo "== building palier-bench (release)" >&2
cargo build --release -q -p palier-bench || exit 1
bin=./target/release/palier-bench

needs_postgres=' (postgres|hold-commit) '
if [[ " ${benches[*]} " =~ $needs_postgres ]] && command -v pg_isready > /dev/null; then
  pg_isready -h 127.0.0.1 -p 5432 -q || echo "warning: PostgreSQL does not answer at 127.0.0.1:5432" >&2
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
failed=0
for bench in "${benches[@]}"; do
  run_timing=("${timing[@]}")
  case "$bench" in
    ingest-single) extra=("${single[@]}") ;;
    ingest-concurrent) extra=("${concurrent[@]}") ;;
    import) extra=("${import[@]}") ;;
    read) extra=("${read[@]}") ;;
    postgres) extra=("${postgres[@]}") ;;
    late) extra=("${late[@]}") ;;
    quote) extra=("${quote[@]}"); run_timing=("${checkout_timing[@]}") ;;
    hold-commit) extra=("${hold_commit[@]}"); run_timing=("${hold_timing[@]}") ;;
    *) echo "unknown benchmark: $bench" >&2; exit 2 ;;
  esac
  echo "== $bench" >&2
  if ! "$bin" "$bench" "${run_timing[@]}" "${extra[@]}" > "$results.one"; then
    echo "RESULT|$bench: FAILED (see above)|-|-|-|-|NO" >> "$results"
    failed=1
  fi
  grep '^RESULT|' "$results.one" >> "$results"
  rm -f "$results.one"
done

echo
runs="best of 3 alternating runs each"
[ "$mode" = quick ] && runs="$runs (quote, hold-commit: 1 run)"
echo "palier vs its baselines ($mode; $(nproc) cores; $runs; $(date -u +%Y-%m-%dT%H:%MZ))"
{
  echo "RESULT|measure|palier|baseline|ratio|goal|met?"
  cat "$results"
} | awk -F'|' '
  { rows[NR] = $0; for (i = 2; i <= NF; i++) if (length($i) > w[i]) w[i] = length($i); n = NR }
  END {
    for (r = 1; r <= n; r++) {
      split(rows[r], f, "|"); line = ""
      for (i = 2; i <= 7; i++) line = line sprintf("%-" w[i] "s", f[i]) (i < 7 ? "  " : "")
      print line
      if (r == 1) { sep = ""; for (i = 2; i <= 7; i++) { s = ""; for (k = 0; k < w[i]; k++) s = s "-"; sep = sep s (i < 7 ? "  " : "") } print sep }
    }
  }'
exit $failed
