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
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  build-asan/fhirlake
	@bt=$$(mktemp -d /tmp/fl-asan-export.XXXXXX); \
	FHIRLAKE_BIN=$(CURDIR)/build-asan/fhirlake ASAN_OPTIONS=detect_leaks=1 \
	  python3 -m pytest -q -p no:cacheprovider --basetemp=$$bt tests/integration/test_export.py; \
	rc=$$?; \
	if grep -rlE "AddressSanitizer|LeakSanitizer|runtime error:" $$bt --include='*.log'; then \
	  echo "asan-export: sanitizer report in the server logs above"; rc=1; fi; \
	rm -rf $$bt; exit $$rc

bench-export: all
	@BENCH_NO_BUILD=1 bash bench/export/run.sh
