#!/usr/bin/env bash
# bench/ingest/run.sh — ingest throughput in resources/s, each beside a peer measured in
# the same run (2-core machine goals: bulk load >= 50,000/s, POST >= 8,000/s):
#  1. bulk load: `fhirlake load` of every NDJSON file of the Synthea data
#     vs peer_load.py (Python sqlite3 executemany into one plain table, same durability).
#  2. POST with 8 concurrent keep-alive clients (post_client.c, C, raw sockets) against
#     `fhirlake serve` vs the same 8 threads inserting the same resources straight into a
#     plain SQLite table, one durable transaction each (post_client sqlite).
# Data: $SYNTHEA_DIR (default bench/data/synthea/1000, else the largest bench/data/synthea/N
# present), else INGEST_N (default 200000) generated resources (gen.py).
# Environment: FHIRLAKE, SYNTHEA_DIR, INGEST_N, POST_TOTAL (default 40000), SYNC (full|normal).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
FL="${FHIRLAKE:-$root/build/fhirlake}"
SYNC="${SYNC:-full}"
POST_TOTAL="${POST_TOTAL:-40000}"
work="$(mktemp -d /tmp/fl-ingest.XXXXXX)"
srv_pid=""
cleanup() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

src="${SYNTHEA_DIR:-$root/bench/data/synthea/1000}"
if ! ls "$src"/*.ndjson >/dev/null 2>&1; then
  src=""
  for d in $(ls -d "$root"/bench/data/synthea/*/ 2>/dev/null | sort -t/ -k1 -V); do
    [ -f "$d/MANIFEST" ] && ls "$d"/*.ndjson >/dev/null 2>&1 && src="${d%/}"
  done
fi
if [ -n "$src" ]; then
  files=("$src"/*.ndjson)
  echo "data: Synthea NDJSON in $src"
else
  mkdir -p "$root/bench/data/ingest"
  gen="$root/bench/data/ingest/gen-${INGEST_N:-200000}.ndjson"
  [ -f "$gen" ] || python3 "$here/gen.py" "${INGEST_N:-200000}" "$gen"
  files=("$gen")
  echo "data: generated $gen"
fi
n_res=$(cat "${files[@]}" | grep -c .)
mb=$(( $(cat "${files[@]}" | wc -c) / 1000000 ))
echo "data: $n_res resources, $mb MB, ${#files[@]} file(s); sync=$SYNC"

gcc -O2 -o "$work/post_client" "$here/post_client.c" -lsqlite3 -lpthread

rate_of() { sed -n 's/.*(\([0-9]*\) resources\/s.*/\1/p' | tail -1; }
cpu() { awk '{print $14+$15}' /proc/$1/stat; }

# The machine may be shared: CPU seconds (user+sys) are reported beside wall time, and
# resources per CPU-second is the figure that does not depend on the neighbours.
echo "== bulk load"
out=$(/usr/bin/time -f "cpu %U %S" "$FL" load "${files[@]}" --data "$work/load" --sync "$SYNC" 2>&1)
echo "fhirlake: $out"
fl_rate=$(echo "$out" | rate_of)
fl_cpu=$(echo "$out" | awk '/^cpu/{print $2+$3}')
out=$(/usr/bin/time -f "cpu %U %S" python3 "$here/peer_load.py" "$work/peer.db" "${files[@]}" 2>&1)
echo "peer:     $out"
peer_rate=$(echo "$out" | rate_of)
peer_cpu=$(echo "$out" | awk '/^cpu/{print $2+$3}')
rm -rf "$work/load" "$work/peer.db"*
echo "result: bulk load $fl_rate resources/s wall, $(python3 -c "print(round($n_res/$fl_cpu))")" \
     "per CPU-s (fhirlake load, $n_res resources) vs peer (python sqlite3 executemany)" \
     "$peer_rate/s wall, $(python3 -c "print(round($n_res/$peer_cpu))") per CPU-s: ratio" \
     "$(python3 -c "print(f'{$fl_rate/$peer_rate:.2f}')")x wall," \
     "$(python3 -c "print(f'{$peer_cpu/$fl_cpu:.2f}')")x CPU"

echo "== POST, 8 concurrent clients"
# A mix of every type: up to 5000 lines from each file.
for f in "${files[@]}"; do head -n 5000 "$f"; done > "$work/post.ndjson"
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$FL" serve --port "$port" --data "$work/serve" --sync "$SYNC" > "$work/serve.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/fhir/metadata" >/dev/null && break; sleep 0.1; done
cpu0=$(awk '{print $14+$15}' /proc/$srv_pid/stat)
out=$("$work/post_client" http 127.0.0.1 "$port" "$work/post.ndjson" 8 "$POST_TOTAL")
srv_cpu=$(awk -v c0="$cpu0" -v hz="$(getconf CLK_TCK)" '{print ($14+$15-c0)/hz}' /proc/$srv_pid/stat)
echo "fhirlake: $out; server CPU ${srv_cpu}s"
post_rate=$(echo "$out" | sed -n 's/.* \([0-9]*\) resources\/s/\1/p')
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=""
out=$("$work/post_client" sqlite "$work/peer_post.db" "$work/post.ndjson" 8 "$POST_TOTAL")
echo "peer:     $out"
peer_post=$(echo "$out" | sed -n 's/.* \([0-9]*\) resources\/s/\1/p')
echo "result: POST $post_rate resources/s wall, $(python3 -c "print(round($POST_TOTAL/max($srv_cpu,0.01)))") per server CPU-s (8 keep-alive clients, $POST_TOTAL creates)" \
     "vs $peer_post/s plain SQLite one-txn-per-insert peer (8 threads, no HTTP): ratio" \
     "$(python3 -c "print(f'{$post_rate/max($peer_post,1):.2f}')")x"
