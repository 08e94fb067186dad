# jobs room targets.
# `make asan-export`: the $viewdefinition-export integration tests (tests/integration/
#   test_export.py: article flow, _since rounds, chunks, kill -9 resume, cancel, bad input)
#   against an ASan+UBSan build (build-asan/fhirlake); fails if any server log holds a
#   sanitizer report (leaks included, checked at graceful stop). Part of `make test`.
# `make bench-export`: bench/export/run.sh — $viewdefinition-export of >= 1M rows of
#   Synthea data into Delta (full, then incremental after changing 1%) against Pathling
#   (DuckDB + delta-rs when Pathling cannot run). Never part of `make test`.
.PHONY: asan-export bench-export
EXTRA_PHONY += asan-export bench-export
EXTRA_TESTS += asan-export

asan-export:
	$(call asan_pytest,asan-export,tests/integration/test_export.py)

bench-export: all
	@BENCH_NO_BUILD=1 bash bench/export/run.sh
