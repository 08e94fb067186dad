# Benchmarks (never part of `make test`): `make bench` runs bench/run.sh — every
# bench/<name>/run.sh against its peer, figures in bench/out/summary.txt.
# `make bench-data` only makes the shared data (Synthea NDJSON, patients-100mb.ndjson).
EXTRA_PHONY += bench bench-data
.PHONY: bench bench-data

BENCH_N ?= 1000

bench:
	@BENCH_N=$(BENCH_N) bash bench/run.sh

bench-data:
	@bash bench/synthea.sh $(BENCH_N) && bash bench/make_patients.sh 100
