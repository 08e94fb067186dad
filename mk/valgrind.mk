# valgrind target. `make valgrind-cli`: scripts/valgrind-cli.sh — the CLI paths (view run
# csv/parquet, view export append / merge / DV merge / merge --key up to a checkpoint and a
# replay from it, a failing export, corrupt logs, sof-test over ../shared/sof-tests, load,
# deltatool read/snapshot/write/checkpoint/vacuum on DV tables) under valgrind memcheck with
# --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9 and no
# suppressions; any valgrind report fails it. Part of `make test` (under the 2-minute bar):
# 23 s on the idle 2-core machine, 45 s while another valgrind run shared it (32 commands,
# 400 Patients). The server paths (jobs, lake_adopt) are checked by LeakSanitizer in
# `make asan-export` instead.
.PHONY: valgrind-cli
EXTRA_PHONY += valgrind-cli
EXTRA_TESTS += valgrind-cli

valgrind-cli: $(BUILD)/fhirlake $(BUILD)/tools/deltatool
	@bash scripts/valgrind-cli.sh $(BUILD)
