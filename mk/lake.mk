# lake room targets. `make deltatool`: the test driver tests/tools/deltatool.c (writes rows
# given as NDJSON into a Delta table via lake.h, prints snapshots) used by
# tests/integration/test_delta*.py; pytest depends on it. `make bench-delta`: bench/delta.
# `make bench-delta-merge`: bench/delta/merge_dv.sh (1% merge, deletion vectors vs rewrite).
.PHONY: deltatool bench-delta bench-delta-merge
EXTRA_PHONY += deltatool bench-delta bench-delta-merge

DELTATOOL := $(BUILD)/tools/deltatool

deltatool: $(DELTATOOL)

$(DELTATOOL): tests/tools/deltatool.c $(BUILD)/libfhirlake.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libfhirlake.a $(LDLIBS_ALL)

pytest: $(DELTATOOL)

bench-delta: all $(DELTATOOL)
	@bash bench/delta/run.sh

bench-delta-merge: $(BUILD)/tools/deltabench
	@BENCH_NO_BUILD=1 bash bench/delta/merge_dv.sh

$(BUILD)/tools/deltabench: bench/delta/deltabench.c $(BUILD)/libfhirlake.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libfhirlake.a $(LDLIBS_ALL)
