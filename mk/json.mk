# json room targets. `make bench-json`: parse+walk MB/s of fhirlake vs jansson vs simdjson
# (bench/json/run.sh). `make json-test`: the json unit tests (plain and ASan+UBSan) built
# from src/json + src/util alone, so they run even while other rooms do not build.
.PHONY: bench-json json-test

bench-json:
	@bash bench/json/run.sh

JSON_TEST_SRC := tests/unit/test_json.c $(wildcard src/json/*.c) $(wildcard src/util/*.c)
JSON_TEST_CF  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -pthread -Isrc -Itests/unit

json-test: $(JSON_TEST_SRC) tests/unit/t.h src/json/json.h src/util/util.h
	@mkdir -p $(BUILD)/json-only
	$(CC) $(JSON_TEST_CF) -O2 -o $(BUILD)/json-only/test_json $(JSON_TEST_SRC) -lm
	$(CC) $(JSON_TEST_CF) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	  -fno-sanitize-recover=all -o $(BUILD)/json-only/test_json_asan $(JSON_TEST_SRC) -lm
	cd tests/unit && ../../$(BUILD)/json-only/test_json && ../../$(BUILD)/json-only/test_json_asan
