# jobs room targets. `make bench-export`: bench/export/run.sh — $viewdefinition-export of
# >= 1M rows of Synthea data into Delta (full, then incremental after changing 1%) against
# Pathling (DuckDB + delta-rs when Pathling cannot run). Never part of `make test`.
.PHONY: bench-export
EXTRA_PHONY += bench-export

bench-export: all
	@BENCH_NO_BUILD=1 bash bench/export/run.sh
