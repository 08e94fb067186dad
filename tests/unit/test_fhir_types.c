/* test_fhir_types.c: the generated FHIR R4 type table and its lookups. */
#include <string.h>

#include "fhirpath/fhir_types.h"
#include "t.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_resource_types(void)
{
    CHECK(fhir_is_resource_type(S("Patient")));
    CHECK(fhir_is_resource_type(S("Observation")));
    CHECK(fhir_is_resource_type(S("Bundle")));
    CHECK(fhir_is_resource_type(S("Resource")));
    CHECK(fhir_is_resource_type(S("DomainResource")));
    CHECK(!fhir_is_resource_type(S("HumanName")));
    CHECK(!fhir_is_resource_type(S("string")));
    CHECK(!fhir_is_resource_type(S("patient")));
    CHECK(!fhir_is_resource_type(S("Patient.contact")));
    CHECK(!fhir_is_resource_type(S("")));
    CHECK(!fhir_is_resource_type(NULL, 0));
    /* a slice of a longer text: only len counts */
    CHECK(fhir_is_resource_type("Patient.name", 7));
    CHECK(!fhir_is_resource_type("Patient", 6));
    /* R4 4.0.1 has 147 concrete resource types + Resource and DomainResource */
    unsigned n = 0;
    for (unsigned i = 0; i < fhir_r4_n_types; i++)
        n += fhir_r4_types[i].kind == FHIR_KIND_RESOURCE;
    CHECK(n == 149);
}

static void test_element_types(void)
{
    CHECK_STR(fhir_element_type("Patient", S("birthDate")), "date");
    CHECK_STR(fhir_element_type("Patient", S("name")), "HumanName");
    CHECK_STR(fhir_element_type("HumanName", S("given")), "string");
    CHECK_STR(fhir_element_type("HumanName", S("family")), "string");
    /* R4 4.0.1 types Resource.id as System.String with fhir-type "string" */
    CHECK_STR(fhir_element_type("Patient", S("id")), "string");
    CHECK_STR(fhir_element_type("Patient", S("meta")), "Meta");
    CHECK_STR(fhir_element_type("Patient", S("active")), "boolean");
    CHECK_STR(fhir_element_type("Patient", S("contact")), "Patient.contact");
    CHECK_STR(fhir_element_type("Patient.contact", S("name")), "HumanName");
    CHECK_STR(fhir_element_type("Observation", S("status")), "code");
    CHECK_STR(fhir_element_type("Observation", S("subject")), "Reference");
    CHECK_STR(fhir_element_type("Observation", S("component")), "Observation.component");
    CHECK_STR(fhir_element_type("Encounter", S("period")), "Period");
    CHECK_STR(fhir_element_type("Period", S("start")), "dateTime");
    CHECK_STR(fhir_element_type("Quantity", S("value")), "decimal");
    CHECK_STR(fhir_element_type("Extension", S("url")), "uri");
    CHECK_STR(fhir_element_type("Element", S("id")), "string");
    CHECK_STR(fhir_element_type("Bundle.entry", S("resource")), "Resource");
    /* contentReference points back at the synthetic type */
    CHECK_STR(fhir_element_type("Questionnaire.item", S("item")), "Questionnaire.item");
    /* a slice */
    CHECK_STR(fhir_element_type("Patient", "birthDate.extension", 9), "date");
    /* unknown */
    CHECK(fhir_element_type("Patient", S("nope")) == NULL);
    CHECK(fhir_element_type("Nope", S("id")) == NULL);
    CHECK(fhir_element_type(NULL, S("id")) == NULL);
    CHECK(fhir_element_type("Patient", NULL, 0) == NULL);
    CHECK(fhir_element_type("Patient", S("birthDat")) == NULL);
}

static void test_arrays(void)
{
    CHECK(fhir_element_is_array("Patient", S("name")));
    CHECK(fhir_element_is_array("HumanName", S("given")));
    CHECK(fhir_element_is_array("Patient", S("extension")));
    CHECK(!fhir_element_is_array("Patient", S("birthDate")));
    CHECK(!fhir_element_is_array("HumanName", S("family")));
    CHECK(!fhir_element_is_array("Observation", S("valueQuantity")));
    CHECK(fhir_element_is_array("Observation", S("component")));
    CHECK(!fhir_element_is_array("Patient", S("nope")));
}

static void test_choices(void)
{
    const char *c = fhir_choice_types("Observation", "value");
    CHECK(c != NULL);
    CHECK_STR(c, "Quantity|CodeableConcept|string|boolean|integer|Range|Ratio|SampledData|"
                 "time|dateTime|Period");
    CHECK_STR(fhir_choice_types("Observation", "value[x]"), c);
    CHECK_STR(fhir_choice_types("Patient", "deceased"), "boolean|dateTime");
    CHECK_STR(fhir_choice_types("Observation.component", "value"), c);
    CHECK(fhir_choice_types("Patient", "name") == NULL);
    CHECK(fhir_choice_types("Patient", "nope") == NULL);
    CHECK(fhir_element_type("Observation", S("value")) == NULL);
    CHECK_STR(fhir_element_type("Observation", S("valueQuantity")), "Quantity");
    CHECK_STR(fhir_element_type("Observation", S("valueDateTime")), "dateTime");
    CHECK_STR(fhir_element_type("Patient", S("deceasedBoolean")), "boolean");
    CHECK_STR(fhir_element_type("Extension", S("valueString")), "string");
    CHECK(fhir_element_type("Observation", S("valueFoo")) == NULL);
    const fhir_elem_ent *e = fhir_element(S("Observation"), S("value"));
    CHECK(e && (e->flags & FHIR_ELEM_CHOICE) && e->type == NULL);
    e = fhir_element(S("Observation"), S("valueQuantity"));
    CHECK(e && (e->flags & FHIR_ELEM_CHOICE_VARIANT));
}

static void test_hierarchy(void)
{
    CHECK(fhir_is_primitive_type(S("date")));
    CHECK(fhir_is_primitive_type(S("positiveInt")));
    CHECK(!fhir_is_primitive_type(S("HumanName")));
    CHECK(fhir_is_type(S("HumanName")));
    CHECK(fhir_is_type(S("Patient.contact")));
    CHECK(!fhir_is_type(S("SimpleQuantity")));  /* a constraint profile, not a type */
    CHECK_STR(fhir_type_base(S("Patient")), "DomainResource");
    CHECK_STR(fhir_type_base(S("DomainResource")), "Resource");
    CHECK(fhir_type_base(S("Resource")) == NULL);
    CHECK_STR(fhir_type_base(S("Age")), "Quantity");
    CHECK_STR(fhir_type_base(S("code")), "string");
    CHECK_STR(fhir_type_base(S("Patient.contact")), "BackboneElement");
    CHECK(fhir_type_is_a("Age", "Quantity"));
    CHECK(fhir_type_is_a("Patient", "Resource"));
    CHECK(fhir_type_is_a("Patient", "Patient"));
    CHECK(!fhir_type_is_a("Quantity", "Age"));
    CHECK(!fhir_type_is_a("Nope", "Resource"));
}

/* The tables must be sorted (byte order) for the binary searches to be right. */
static void test_sorted(void)
{
    for (unsigned i = 1; i < fhir_r4_n_types; i++)
        CHECK(strcmp(fhir_r4_types[i - 1].name, fhir_r4_types[i].name) < 0);
    unsigned total = 0;
    for (unsigned i = 0; i < fhir_r4_n_types; i++) {
        const fhir_type_ent *t = &fhir_r4_types[i];
        CHECK(t->first + t->n <= fhir_r4_n_elems);
        total += t->n;
        for (unsigned j = t->first + 1; j < t->first + t->n; j++)
            CHECK(strcmp(fhir_r4_elems[j - 1].name, fhir_r4_elems[j].name) < 0);
    }
    CHECK(total == fhir_r4_n_elems);
}

/* Every element and every type is found through the hash tables, as itself. */
static void test_hash_finds_all(void)
{
    unsigned miss = 0;
    for (unsigned i = 0; i < fhir_r4_n_elems; i++) {
        const fhir_elem_ent *e = &fhir_r4_elems[i];
        const fhir_type_ent *t = &fhir_r4_types[e->owner];
        CHECK(e->owner < fhir_r4_n_types && i >= t->first && i < t->first + t->n);
        miss += fhir_element(t->name, strlen(t->name), e->name, strlen(e->name)) != e;
        CHECK(e->name_len == strlen(e->name));
    }
    CHECK(miss == 0);
    for (unsigned i = 0; i < fhir_r4_n_types; i++)
        CHECK(fhir_is_type(fhir_r4_types[i].name, strlen(fhir_r4_types[i].name)));
    /* a key that hashes like "type.element" but splits differently is not found */
    CHECK(fhir_element(S("Patient.contact"), S("name")) != NULL);
    CHECK(fhir_element(S("Patient"), S("contact.name")) == NULL);
}

int main(void)
{
    RUN(test_resource_types);
    RUN(test_element_types);
    RUN(test_arrays);
    RUN(test_choices);
    RUN(test_hierarchy);
    RUN(test_sorted);
    RUN(test_hash_finds_all);
    return t_report("fhir_types");
}
