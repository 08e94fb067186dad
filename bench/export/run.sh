#!/usr/bin/env bash
# bench/export/run.sh — $viewdefinition-export throughput (see bench_export.py's opening
# comment for exactly what is timed): full export of >= 1M rows of Synthea data (four views
# over Observation, Encounter, Condition, Procedure) into Delta via `fhirlake serve`, then an
# incremental _since export after changing 1% of the resources, against Pathling (PyPI,
# Spark local[2], installed into bench/data/pathling-venv on first run) running the same
# views over the same NDJSON into Delta; DuckDB + delta-rs when Pathling cannot run (the
# output says which peer ran and why).
# Env: SYNTHEA_DIR (default bench/data/synthea/1000), BENCH_EXPORT_CHUNKS (4),
# BENCH_NO_BUILD=1, BENCH_EXPORT_NO_PATHLING=1, PATHLING_VERSION (9.4.0),
# PATHLING_JAVA_HOME (default: the lowest JDK >= 21 in /usr/lib/jvm), MAVEN_REPO.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
[ -n "${BENCH_NO_BUILD:-}" ] || make -s -j2 all >/dev/null
syn="${SYNTHEA_DIR:-$root/bench/data/synthea/1000}"
[ -f "$syn/Observation.ndjson" ] || bash bench/synthea.sh 1000 "$syn"
# Pathling peer. 9.x runs on Spark 4 and needs Java >= 21. 10.0.0 and 9.5.0..9.9.0 need a
# library-runtime jar that Maven Central (as reachable here) does not serve; 9.4.0 resolves,
# so it is the default (PATHLING_VERSION overrides). On JDK 24+ Hadoop 3.4's UGI dies on
# Subject.getSubject, so Hadoop 3.5 client jars go first on the driver class path.
venv="$root/bench/data/pathling-venv"
pv="${PATHLING_VERSION:-9.4.0}"
peer_why=""
if [ -n "${BENCH_EXPORT_NO_PATHLING:-}" ]; then
    peer_why="BENCH_EXPORT_NO_PATHLING is set"
else
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || true
    if [ "$("$venv/bin/python" -c 'from pathling._version import __version__ as v; print(v)' 2>/dev/null)" != "$pv" ]; then
        "$venv/bin/pip" install -q "pathling==$pv" >/dev/null 2>&1 || peer_why="pip install pathling==$pv failed"
    fi
    jh="${PATHLING_JAVA_HOME:-}"
    if [ -z "$jh" ]; then   # the lowest JDK >= 21 under /usr/lib/jvm
        best=999
        for d in /usr/lib/jvm/*/; do
            [ -x "$d/bin/java" ] && [ -f "$d/release" ] || continue
            m="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$d/release")"
            if [ -n "$m" ] && [ "$m" -ge 21 ] && [ "$m" -lt "$best" ]; then best="$m"; jh="${d%/}"; fi
        done
    fi
    if [ -z "$jh" ]; then
        peer_why="${peer_why:-no JDK >= 21 under /usr/lib/jvm (set PATHLING_JAVA_HOME)}"
    elif [ -z "$peer_why" ]; then
        export PATHLING_JAVA_HOME="$jh"
        m="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$jh/release")"
        if [ "${m:-0}" -ge 24 ]; then
            jars="$root/bench/data/pathling-jars"; mkdir -p "$jars"; cp=""
            for a in hadoop-client-api hadoop-client-runtime; do
                f="$jars/$a-3.5.0.jar"
                [ -s "$f" ] || curl -sf --max-time 600 -o "$f" \
                    "${MAVEN_REPO:-https://repo1.maven.org/maven2}/org/apache/hadoop/$a/3.5.0/$a-3.5.0.jar" \
                    || { rm -f "$f"; peer_why="could not fetch $a 3.5.0 (needed on JDK $m)"; }
                cp="$cp${cp:+:}$f"
            done
            export PATHLING_EXTRA_CLASSPATH="$cp"
        fi
    fi
fi
export PEER_WHY="$peer_why"
SYNTHEA_DIR="$syn" python3 "$here/bench_export.py"
