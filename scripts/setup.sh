#!/usr/bin/env bash
# Installs everything fhirlake's build, tests and benchmarks need on a fresh Debian 12
# machine, as root. Idempotent: a second run only checks. --build-only: just what building
# and serving needs (Debian packages), for `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Building and serving.
BUILD_PKGS="build-essential pkg-config sqlite3 libsqlite3-dev libmicrohttpd-dev libpq-dev
  libcurl4-openssl-dev libzstd-dev libsnappy-dev zlib1g-dev libssl-dev curl"
# Tests and benchmarks: peers (jansson, simdjson), valgrind, Java for Spark and Synthea.
TEST_PKGS="libjansson-dev libsimdjson-dev valgrind postgresql openjdk-17-jre-headless maven"

APT_PKGS="$BUILD_PKGS"
[ "${1:-}" = "--build-only" ] || APT_PKGS="$BUILD_PKGS $TEST_PKGS"
missing=""
for p in $APT_PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing
fi

# `setup.sh --build-only` (used by `make run`) stops here: the server needs nothing more.
if [ "${1:-}" = "--build-only" ]; then
  echo "setup: build dependencies ok"
  exit 0
fi

# Python readers that judge our tables, and the test runner.
PIP_PKGS="pytest==9.2.0 requests==2.34.2 pyarrow==26.0.1 deltalake==1.6.6 duckdb==2.0.1 pyspark==3.5.3 delta-spark==3.2.1 moto[server]==5.2.1 boto3==1.43.11"
if ! python3 -c "import pytest, requests, pyarrow, deltalake, duckdb, pyspark, delta, moto, flask_cors, boto3" 2>/dev/null; then
  python3 -m pip install -q $PIP_PKGS
fi
# JS peers for the differential FHIRPath test and the view benchmark (tests/js, lockfile).
if [ ! -d tests/js/node_modules ] && command -v npm >/dev/null 2>&1; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi
# delta-spark's jars (io.delta from Maven Central into ~/.ivy2) for the Spark reader tests.
if [ ! -f "$HOME/.ivy2/jars/io.delta_delta-spark_2.12-3.2.1.jar" ]; then
  python3 tests/integration/delta_helpers.py --warm-spark
fi
# hadoop-aws 3.3.4 (Spark 3.5.3's Hadoop) + its aws-java-sdk-bundle for Spark reading s3a:// in test_s3*.
if [ ! -f "$HOME/.ivy2/jars/org.apache.hadoop_hadoop-aws-3.3.4.jar" ]; then
  python3 tests/integration/test_s3_spark.py --warm-spark
fi
echo "setup: ok"
