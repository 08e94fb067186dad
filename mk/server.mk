# store + server room targets.
# `make asan-rest`: the REST integration tests (tests/integration/test_rest.py) against
#   an ASan+UBSan build of fhirlake (build-asan/fhirlake); part of `make test`.
# `make store-test`: the store unit tests (plain and ASan+UBSan) built from src/store +
#   src/util alone, so they run even while other rooms do not build.
# `make bench-ingest`: bulk load and 8-client POST resources/s vs SQLite peers.
.PHONY: asan-rest store-test bench-ingest
EXTRA_PHONY += asan-rest store-test bench-ingest
EXTRA_TESTS += asan-rest

ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

asan-rest:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 SAN_FLAGS="$(ASAN_FLAGS)" build-asan/fhirlake
	FHIRLAKE_BIN=$(CURDIR)/build-asan/fhirlake ASAN_OPTIONS=detect_leaks=1 \
	  python3 -m pytest -q -p no:cacheprovider tests/integration/test_rest.py

STORE_TEST_SRC := tests/unit/test_store.c $(wildcard src/store/*.c) $(wildcard src/util/*.c)
STORE_TEST_CF  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -pthread -Isrc -Itests/unit

store-test: $(STORE_TEST_SRC) tests/unit/t.h src/store/store.h src/util/util.h
	@mkdir -p $(BUILD)/store-only
	$(CC) $(STORE_TEST_CF) -O2 -o $(BUILD)/store-only/test_store $(STORE_TEST_SRC) -lsqlite3
	$(CC) $(STORE_TEST_CF) -O1 $(ASAN_FLAGS) -o $(BUILD)/store-only/test_store_asan \
	  $(STORE_TEST_SRC) -lsqlite3
	cd tests/unit && ../../$(BUILD)/store-only/test_store && ../../$(BUILD)/store-only/test_store_asan

bench-ingest: all
	@bash bench/ingest/run.sh
