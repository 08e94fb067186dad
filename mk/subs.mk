# subs room targets.
# `make asan-subs`: the continuous-delivery integration tests (tests/integration/
#   test_subs.py) against an ASan+UBSan build (build-asan/fhirlake); fails if any server
#   log holds a sanitizer report (leaks included, checked at graceful stop). In make test.
# `make bench-subs`: continuous delivery under sustained write load (bench/subs/run.sh:
#   ack -> Delta visibility p50/p99 at 2,000 writes/s vs the goal sendIntervalMs + 500 ms,
#   write ack latency with/without a destination, flat-lag rate sweep).
.PHONY: asan-subs bench-subs
EXTRA_PHONY += asan-subs bench-subs
EXTRA_TESTS += asan-subs

asan-subs:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  build-asan/fhirlake
	@bt=$$(mktemp -d /tmp/fl-asan-subs.XXXXXX); \
	FHIRLAKE_BIN=$(CURDIR)/build-asan/fhirlake ASAN_OPTIONS=detect_leaks=1 \
	  python3 -m pytest -q -p no:cacheprovider --basetemp=$$bt tests/integration/test_subs.py; \
	rc=$$?; \
	if grep -rlE "AddressSanitizer|LeakSanitizer|runtime error:" $$bt --include='*.log'; then \
	  echo "asan-subs: sanitizer report in the server logs above"; rc=1; fi; \
	rm -rf $$bt; exit $$rc

bench-subs: all
	@bash bench/subs/run.sh
