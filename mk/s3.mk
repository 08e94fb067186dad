# s3 room targets (S3 object store, Databricks managed-sql).
# `make s3-test`: the S3 + Databricks integration tests only (loopback S3 server from
#   scripts/s3_server.sh, tests/dbx_server on local Spark); they also run in `make pytest`.
# `make asan-s3`: test_s3.py against ASan+UBSan builds of fhirlake and deltatool; fails
#   if any server log or the test output (deltatool's stderr shows in failures) holds a
#   sanitizer report. In make test.
.PHONY: s3-test asan-s3
EXTRA_PHONY += s3-test asan-s3
EXTRA_TESTS += asan-s3

s3-test: all $(DELTATOOL)
	@python3 -m pytest -q -p no:cacheprovider tests/integration/test_s3.py \
	  tests/integration/test_s3_spark.py tests/integration/test_databricks.py

asan-s3:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  build-asan/fhirlake build-asan/tools/deltatool
	@bt=$$(mktemp -d /tmp/fl-asan-s3.XXXXXX); \
	FHIRLAKE_BIN=$(CURDIR)/build-asan/fhirlake DELTATOOL_BIN=$(CURDIR)/build-asan/tools/deltatool \
	  ASAN_OPTIONS=detect_leaks=1 \
	  python3 -m pytest -q -p no:cacheprovider --basetemp=$$bt tests/integration/test_s3.py \
	  > $$bt.log 2>&1; \
	rc=$$?; tail -3 $$bt.log; \
	if grep -rlE "AddressSanitizer|LeakSanitizer|runtime error:" $$bt $$bt.log --include='*.log'; then \
	  grep -hE -A12 "AddressSanitizer|LeakSanitizer|runtime error:" $$bt.log | head -60; \
	  echo "asan-s3: sanitizer report above"; rc=1; fi; \
	rm -rf $$bt $$bt.log; exit $$rc
