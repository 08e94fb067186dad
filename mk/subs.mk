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
	$(call asan_pytest,asan-subs,tests/integration/test_subs.py)

bench-subs: all
	@bash bench/subs/run.sh
