# fhirlake build. `make` builds build/fhirlake; `make run` installs what is needed, builds
# and serves on 127.0.0.1:8080 with data in ./data; `make test` installs what is needed
# and runs every test (unit, ASan+UBSan unit, SQL-on-FHIR suite, integration).
# Room-specific targets live in mk/*.mk (they add to EXTRA_TESTS and friends).

CC      ?= gcc
CXX     ?= g++
BUILD   ?= build
PORT    ?= 8080
DATA    ?= ./data
PKGS    := libmicrohttpd libcurl sqlite3 libpq libzstd zlib libcrypto
OPT     ?= -O2
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) -g -pthread \
              -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(SAN_FLAGS) $(CFLAGS)
LDLIBS_ALL := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lsnappy -lpthread -lm \
              $(SAN_FLAGS) $(LDFLAGS)

LIB_SRC   := $(shell find src -name '*.c' -not -path 'src/cli/*' | sort)
CLI_SRC   := $(sort $(wildcard src/cli/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HEADERS   := $(shell find src -name '*.h')

EXTRA_TESTS :=
EXTRA_PHONY :=

.PHONY: all deps build-deps run test unit asan-unit pytest clean $(EXTRA_PHONY)

all: $(BUILD)/fhirlake

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libfhirlake.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fhirlake: $(CLI_OBJ) $(BUILD)/libfhirlake.a
	$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJ) $(BUILD)/libfhirlake.a $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/t.h $(BUILD)/libfhirlake.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(BUILD)/libfhirlake.a $(LDLIBS_ALL)

deps:
	@bash scripts/setup.sh

build-deps:
	@bash scripts/setup.sh --build-only

run: build-deps all
	@mkdir -p $(DATA)
	@echo "fhirlake: serving http://127.0.0.1:$(PORT)/fhir (data in $(DATA)); Ctrl-C stops"
	$(BUILD)/fhirlake serve --port $(PORT) --data $(DATA)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; (cd tests/unit && $(abspath $(BUILD))/tests/$$(basename $$t)); done

# Same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan-unit:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" unit

pytest: all
	@bash scripts/pytest.sh

clean:
	rm -rf build build-asan

# $(call asan_pytest,NAME,TEST_FILE): TEST_FILE's integration tests against an ASan+UBSan
# build (build-asan/fhirlake); fails when any server log holds a sanitizer report (leaks
# included, checked at graceful stop). Used by the asan-* targets of mk/*.mk.
ASAN_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
define asan_pytest
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 SAN_FLAGS="$(ASAN_SAN)" build-asan/fhirlake
	@bt=$$(mktemp -d /tmp/fl-$(1).XXXXXX); \
	FHIRLAKE_BIN=$(CURDIR)/build-asan/fhirlake ASAN_OPTIONS=detect_leaks=1 \
	  python3 -m pytest -q -p no:cacheprovider --basetemp=$$bt $(2); \
	rc=$$?; \
	if grep -rlE "AddressSanitizer|LeakSanitizer|runtime error:" $$bt --include='*.log'; then \
	  echo "$(1): sanitizer report in the server logs above"; rc=1; fi; \
	rm -rf $$bt; exit $$rc
endef

-include mk/*.mk

# After the fragments: prerequisites expand when read, and mk/*.mk add to EXTRA_TESTS.
test: deps all unit asan-unit $(EXTRA_TESTS) pytest
