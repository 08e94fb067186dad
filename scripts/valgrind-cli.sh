#!/usr/bin/env bash
# scripts/valgrind-cli.sh [BUILD] — the CLI paths under valgrind memcheck (`make valgrind-cli`).
# Every command runs under
#   valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9
# with no suppressions; any valgrind report (or exit 9) fails the run, and so does a command
# whose exit code is not the expected one. Data: 400 generated Patients plus two update sets.
#
# Paths: view run (csv, parquet, ndjson from a Bundle on stdin, a missing input);
# view export --mode append; --mode merge creating a table, then a second merge (checked to
# write deletion vectors), then merges with --key id up to version 11, so the committer
# writes the version-10 checkpoint and the last merge replays from it (both checked);
# an export that fails on a bad line (abort path); errors on corrupt logs (message kept);
# sof-test over ../shared/sof-tests; load; deltatool read / snapshot / checkpoint / vacuum
# on the CLI's DV table, and
# deltatool write (multi-file table, then a DV merge) / checkpoint / read / vacuum.
# The functional checks only make sure each path really ran: the tests under
# tests/integration judge the results.
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
FL="$build/fhirlake"
DT="$build/tools/deltatool"
SOF_DIR="${SOF_TESTS_DIR:-$root/../shared/sof-tests}"
for b in "$FL" "$DT"; do [ -x "$b" ] || { echo "valgrind-cli: $b not built" >&2; exit 2; }; done
command -v valgrind >/dev/null || { echo "valgrind-cli: valgrind not installed" >&2; exit 2; }

work="$(mktemp -d /tmp/fl-valgrind-cli.XXXXXX)"
trap 'rm -rf "$work"' EXIT
fails=0
runs=0

# vg NAME WANT_RC CMD...: runs CMD under valgrind (stdin is the caller's), keeping its
# stdout in $work/NAME.out; a valgrind report or an unexpected exit code is a failure.
vg() {
    local name="$1" want="$2"
    shift 2
    runs=$((runs + 1))
    valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9 \
        --log-file="$work/$name.vg" "$@" >"$work/$name.out" 2>"$work/$name.err"
    local rc=$?
    if [ -s "$work/$name.vg" ] || [ "$rc" -eq 9 ]; then
        echo "valgrind-cli: FAIL $name: valgrind reported errors (exit $rc):"
        cat "$work/$name.vg"
        fails=$((fails + 1))
    elif [ "$rc" -ne "$want" ]; then
        echo "valgrind-cli: FAIL $name: exit $rc, expected $want:"
        cat "$work/$name.err"
        fails=$((fails + 1))
    else
        echo "valgrind-cli: ok   $name"
    fi
}

# check NAME CONDITION...: a functional check that the path under test really ran.
check() {
    local name="$1"
    shift
    if ! "$@"; then
        echo "valgrind-cli: FAIL $name"
        fails=$((fails + 1))
    fi
}

lines() { wc -l <"$1" | tr -d ' '; }

# ---- data: Patients pt-0000..pt-0399; b = every 7th with a new family + 20 new ids;
# c = every 11th from 3 with another family ----
patients() {  # patients FIRST LAST STEP FAMILY(empty = FamN)
    awk -v a="$1" -v z="$2" -v s="$3" -v fam="$4" 'BEGIN {
        for (i = a; i <= z; i += s) {
            f = fam == "" ? "Fam" i : fam
            printf "{\"resourceType\":\"Patient\",\"id\":\"pt-%04d\",", i
            printf "\"meta\":{\"lastUpdated\":\"2024-01-01T00:00:00Z\"},"
            printf "\"gender\":\"%s\",\"birthDate\":\"1980-01-%02d\",", i % 2 ? "female" : "male", i % 28 + 1
            printf "\"name\":[{\"use\":\"official\",\"family\":\"%s\",\"given\":[\"G%d\",\"X\"]}]}\n", f, i
        } }'
}
cd "$work" || exit 2
patients 0 399 1 "" >a.ndjson
{ patients 0 399 7 New; patients 400 419 1 New; } >b.ndjson
patients 3 399 11 Newer >c.ndjson
{ echo '{"resourceType":"Bundle","type":"collection","entry":['
  sed 's/^/{"resource":/; s/$/},/' c.ndjson | sed '$ s/,$//'
  echo ']}'; } >c.bundle.json
printf '%s\n' "$(head -n 5 a.ndjson)" '{"resourceType":"Patient","id":"broken",' >bad.ndjson
cp "$root/bench/views/patient_flat.json" view.json
awk '{ printf "{\"id\":\"k%04d\",\"n\":%d,\"tags\":[\"a\",\"b%d\"]}\n", NR - 1, NR - 1, NR - 1 }' \
    a.ndjson | head -n 300 >rows.ndjson
awk 'NR % 13 == 1 { printf "{\"id\":\"k%04d\",\"n\":-1}\n", NR - 1 }' rows.ndjson >upd.ndjson
SCHEMA="id:string,n:long,tags:string[]"

# ---- view run ----
vg run-csv 0 "$FL" view run view.json a.ndjson --format csv --out out.csv
check "run-csv: 401 lines" [ "$(lines out.csv)" = 401 ]
vg run-parquet 0 "$FL" view run view.json a.ndjson b.ndjson --format parquet --out out.parquet
check "run-parquet: a Parquet file" [ "$(head -c 4 out.parquet)" = PAR1 ]
vg run-stdin-bundle 0 "$FL" view run view.json --format ndjson <c.bundle.json
check "run-stdin-bundle: 37 rows" [ "$(lines run-stdin-bundle.out)" = 37 ]
vg run-missing-input 1 "$FL" view run view.json a.ndjson no-such.ndjson --format csv

# ---- view export ----
vg export-append 0 "$FL" view export view.json a.ndjson --to lake/app --mode append
T=lake/merged
vg export-merge-1 0 "$FL" view export view.json a.ndjson --to $T --mode merge
vg export-merge-2 0 "$FL" view export view.json b.ndjson --to $T --mode merge
check "export-merge-2 wrote deletion vectors" \
    grep -q '"deletionVector":{' $T/_delta_log/00000000000000000001.json
vg export-merge-key 0 "$FL" view export view.json c.ndjson --to $T --mode merge --key id
for v in 3 4 5 6 7 8 9 10 11; do   # version 10 is written with its checkpoint
    if [ $((v % 2)) = 1 ]; then in=b.ndjson; else in=c.ndjson; fi
    vg "export-merge-v$v" 0 "$FL" view export view.json $in --to $T --mode merge --key id
done
check "checkpoint written at version 10" \
    test -s $T/_delta_log/00000000000000000010.checkpoint.parquet -a -s $T/_delta_log/_last_checkpoint
vg export-bad-line 1 "$FL" view export view.json a.ndjson bad.ndjson --to $T
# Corrupt logs: the errors wrap the parser's message in context (fl_err_set with its own
# msg as an argument, which once overlapped and came out garbled).
cp -r lake/app lake/bad-schema
sed -i 's/"schemaString":"{/"schemaString":"{x/' lake/bad-schema/_delta_log/00000000000000000000.json
vg export-bad-schema 1 "$FL" view export view.json c.ndjson --to lake/bad-schema
check "export-bad-schema: the parser's message kept" \
    grep -q "bad schemaString: invalid JSON: unexpected 'x'" export-bad-schema.err
cp -r lake/app lake/bad-commit
echo '{"commitInfo":{' >>lake/bad-commit/_delta_log/00000000000000000000.json
vg dt-read-bad-commit 1 "$DT" read lake/bad-commit
check "dt-read-bad-commit: the parser's message kept" \
    grep -q "corrupt commit file: invalid JSON: unexpected end of input" dt-read-bad-commit.err

# ---- sof-test, load ----
vg sof-test 0 "$FL" sof-test "$SOF_DIR"/*.json --report sof-report.json -q
vg load 0 "$FL" load a.ndjson b.ndjson c.bundle.json --data data

# ---- deltatool on the CLI's DV table ----
vg dt-snapshot 0 "$DT" snapshot $T
check "dt-snapshot: replay from the version-10 checkpoint" \
    grep -q '"version":11,"checkpoint_version":10' dt-snapshot.out
vg dt-read 0 "$DT" read $T
check "dt-read: 420 live rows" [ "$(lines dt-read.out)" = 420 ]
vg dt-checkpoint 0 "$DT" checkpoint $T
vg dt-vacuum 0 "$DT" vacuum $T --retention-hours 0
check "dt-vacuum deleted files" grep -Eq '"deleted":[1-9]' dt-vacuum.out
vg dt-read-after-vacuum 0 "$DT" read $T
check "dt-read-after-vacuum: 420 live rows" [ "$(lines dt-read-after-vacuum.out)" = 420 ]

# ---- deltatool write: a multi-file table, then a merge by DV ----
vg dt-write 0 "$DT" write dt --schema "$SCHEMA" --mode merge --key id --file-rows 50 \
    --batch 50 <rows.ndjson
vg dt-write-merge 0 "$DT" write dt --schema "$SCHEMA" --mode merge --key id <upd.ndjson
check "dt-write-merge: DVs on every file" grep -q '"files_dv":6' dt-write-merge.out
vg dt-write-checkpoint 0 "$DT" checkpoint dt
vg dt-write-read 0 "$DT" read dt
check "dt-write-read: 300 live rows" [ "$(lines dt-write-read.out)" = 300 ]
vg dt-write-vacuum 0 "$DT" vacuum dt --retention-hours 0

echo "valgrind-cli: $runs commands under valgrind, $fails failure(s)"
[ "$fails" -eq 0 ]
