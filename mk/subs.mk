# subs room targets. `make bench-subs`: continuous delivery under sustained write load
# (bench/subs/run.sh: ack -> Delta visibility p50/p99 at 2,000 writes/s vs the goal
# sendIntervalMs + 500 ms, write latency with/without a destination, flat-lag rate sweep).
# The integration tests (tests/integration/test_subs.py) run with the rest under `make test`.
.PHONY: bench-subs
EXTRA_PHONY += bench-subs

bench-subs: all
	@bash bench/subs/run.sh
