# sof room: the official SQL-on-FHIR v2 conformance suite, run through `fhirlake sof-test`;
# the report (official test-report format) lands in build/sof-report.json.
SOF_TESTS_DIR ?= $(CURDIR)/../shared/sof-tests

EXTRA_TESTS += sof-test
EXTRA_PHONY += sof-test

sof-test: $(BUILD)/fhirlake
	$(BUILD)/fhirlake sof-test $(sort $(wildcard $(SOF_TESTS_DIR)/*.json)) --report $(BUILD)/sof-report.json
