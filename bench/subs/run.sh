#!/usr/bin/env bash
# bench/subs/run.sh — continuous delivery under sustained write load (issue 6).
# Starts `fhirlake serve` (fresh data dir), then:
#  1. peer: the same open-loop POST/PUT load with no destination (write ack latency only);
#  2. with an AidboxTopicDestination active (patient_flat view, sendIntervalMs
#     $SEND_MS, batchSize $BATCH, skipInitialExport): the latency from each write's ack to
#     its visibility in the Delta table (subs_bench.c watches _delta_log), p50/p99, at
#     $RATE writes/s, goal p99 <= sendIntervalMs + 500 ms;
#  3. a rate sweep ($SWEEP): the highest rate whose lag stays flat (last-third p50 of the
#     visibility latency <= first-third p50 + sendIntervalMs/2, everything delivered).
# Environment: FHIRLAKE, RATE (2000), SECS (15), SEND_MS (1000), BATCH (10000),
# SWEEP ("1000 2000 3000 4000 6000 8000"), CONNS (16), SYNC (full|normal, default full).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
FL="${FHIRLAKE:-$root/build/fhirlake}"
RATE="${RATE:-2000}"; SECS="${SECS:-15}"; SEND_MS="${SEND_MS:-1000}"; BATCH="${BATCH:-10000}"
SWEEP="${SWEEP:-1000 2000 3000 4000 6000 8000}"; CONNS="${CONNS:-16}"; SYNC="${SYNC:-full}"
work="$(mktemp -d /tmp/fl-subs.XXXXXX)"
srv_pid=""
cleanup() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

[ -x "$FL" ] || make -C "$root" -j2 >/dev/null
gcc -std=c11 -D_GNU_SOURCE -O2 -pthread -I"$root/src" -o "$work/subs_bench" "$here/subs_bench.c" \
  "$root/build/libfhirlake.a" -lmicrohttpd -lcurl -lsqlite3 -lpq -lzstd -lz -lcrypto -lsnappy -lm

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$FL" serve --port "$port" --data "$work/data" --sync "$SYNC" >"$work/server.log" 2>&1 &
srv_pid=$!
B="http://127.0.0.1:$port/fhir"
for _ in $(seq 100); do curl -sf "$B/metadata" >/dev/null && break; sleep 0.1; done

echo "== peer: write load, no destination ($RATE writes/s, ${SECS}s, $CONNS connections, sync=$SYNC)"
peer=$("$work/subs_bench" --port "$port" --rate "$RATE" --secs "$SECS" --conns "$CONNS")
echo "$peer"

j() { curl -sf -X PUT -H 'Content-Type: application/fhir+json' "$B/$1" -d "$2" >/dev/null; }
j ViewDefinition/patient_flat '{"resourceType":"ViewDefinition","id":"patient_flat","name":"patient_flat","resource":"Patient","status":"active","select":[{"column":[{"name":"id","path":"id"},{"name":"ts","path":"getAidboxTs()"},{"name":"gender","path":"gender"},{"name":"birth_date","path":"birthDate"},{"name":"family_name","path":"name.first().family"}]}]}'
j AidboxSubscriptionTopic/t '{"resourceType":"AidboxSubscriptionTopic","id":"t","url":"http://example.org/patients","status":"active","trigger":[{"resource":"Patient","supportedInteraction":["create","update","delete"]}]}'
j AidboxTopicDestination/bench '{"resourceType":"AidboxTopicDestination","id":"bench","topic":"http://example.org/patients","kind":"data-lakehouse-at-least-once","parameter":[{"name":"viewDefinition","valueString":"patient_flat"},{"name":"batchSize","valueUnsignedInt":'"$BATCH"'},{"name":"sendIntervalMs","valueUnsignedInt":'"$SEND_MS"'},{"name":"skipInitialExport","valueBoolean":true}]}'
table="$work/data/lake/patient_flat"

p99_of() { sed -n 's/.*visibility ms.*p99 \([0-9.]*\) max.*/\1/p'; }
ackp99_of() { sed -n 's/^ack latency ms: p50 [0-9.]* p99 \([0-9.]*\).*/\1/p'; }
echo "== destination active: $RATE writes/s, ${SECS}s, sendIntervalMs $SEND_MS, batchSize $BATCH"
main=$("$work/subs_bench" --port "$port" --rate "$RATE" --secs "$SECS" --conns "$CONNS" --table "$table")
echo "$main"
p99=$(echo "$main" | p99_of)
goal=$((SEND_MS + 500))
echo "result: subs visibility at $RATE writes/s: $(echo "$main" | sed -n 's/.*visibility ms (ack -> Delta commit): \(p50 [0-9.]* p99 [0-9.]*\).*/\1/p') ms; goal p99 <= $goal ms -> $(python3 -c "print(f'{$p99/$goal:.2f}')")x of goal"
echo "result: subs write ack p99 with destination $(echo "$main" | ackp99_of) ms vs no destination $(echo "$peer" | ackp99_of) ms (peer, same run)"

best=0
for r in $SWEEP; do
  out=$("$work/subs_bench" --port "$port" --rate "$r" --secs "$SECS" --conns "$CONNS" --table "$table")
  echo "-- sweep $r/s: $(echo "$out" | tr '\n' ' ')"
  flat=$(echo "$out" | python3 -c "
import re,sys
t=sys.stdin.read()
m=re.search(r'first third p50 ([0-9.]+), last third p50 ([0-9.]+); \d+ commits; (\d+) never',t)
a=re.search(r'\((\d+)/s\)',t)
ok = m and float(m.group(2)) <= float(m.group(1)) + $SEND_MS/2 and int(m.group(3)) == 0 and a and int(a.group(1)) >= 0.95*$r
print(1 if ok else 0)")
  [ "$flat" = 1 ] && best=$r
done
echo "result: subs highest rate with flat lag (of $SWEEP): $best writes/s"
