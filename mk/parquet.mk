# parquet room targets. `make pqtool`: the test driver tests/tools/pqtool.c (write/read
# Parquet through both API layers, benchmark writer) used by tests/integration/test_parquet*.py;
# pytest depends on it. `make parquet-test`: the parquet unit tests (plain and ASan+UBSan)
# built from the format/rows/json/util rooms alone, so they run while other rooms do not
# build. `make bench-parquet`: bench/parquet/run.sh (ours vs pyarrow write throughput).
.PHONY: pqtool parquet-test bench-parquet
EXTRA_PHONY += pqtool parquet-test bench-parquet

PQTOOL := $(BUILD)/tools/pqtool
PQ_ONLY_SRC := $(wildcard src/format/parquet*.c) $(wildcard src/rows/*.c) \
               $(wildcard src/json/*.c) $(wildcard src/util/*.c)
PQ_ONLY_CF  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -pthread -Isrc -Itests/unit
PQ_ONLY_LD  := -lsnappy -lzstd -lz -lm

pqtool: $(PQTOOL)

# Built from the rooms it needs only, so a broken build elsewhere does not stop the tests.
$(PQTOOL): tests/tools/pqtool.c $(PQ_ONLY_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(PQ_ONLY_CF) -O2 -o $@ $< $(PQ_ONLY_SRC) $(PQ_ONLY_LD)

pytest: $(PQTOOL)

parquet-test: tests/unit/test_parquet.c $(PQ_ONLY_SRC) $(HEADERS) tests/unit/t.h
	@mkdir -p $(BUILD)/parquet-only
	$(CC) $(PQ_ONLY_CF) -O2 -o $(BUILD)/parquet-only/test_parquet tests/unit/test_parquet.c $(PQ_ONLY_SRC) $(PQ_ONLY_LD)
	$(CC) $(PQ_ONLY_CF) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	  -fno-sanitize-recover=all -o $(BUILD)/parquet-only/test_parquet_asan tests/unit/test_parquet.c $(PQ_ONLY_SRC) $(PQ_ONLY_LD)
	cd tests/unit && ../../$(BUILD)/parquet-only/test_parquet && ../../$(BUILD)/parquet-only/test_parquet_asan

bench-parquet: $(PQTOOL)
	@bash bench/parquet/run.sh
