/* fhir_types: the FHIR R4 (4.0.1) type model as a compact read-only table: which names are
 * resource types, the type and cardinality of each element of each complex type or
 * resource, and the types allowed for each choice element (value[x]).
 *
 * Contract:
 *  - Built from the official R4 StructureDefinitions by scripts/gen_fhir_types.mjs into
 *    fhir_types_r4.c (generated, committed). Only specializations are types; constraint
 *    profiles (SimpleQuantity, MoneyQuantity) are not.
 *  - Backbone elements get a synthetic type named by their path: the element "contact" of
 *    "Patient" has type "Patient.contact", whose elements are looked up the same way.
 *    contentReference elements (Questionnaire.item.item) point at that synthetic type.
 *  - Choice elements: the base name ("value", "value[x]" also accepted) has no single type
 *    (fhir_element_type returns NULL) and fhir_choice_types lists its types; every variant
 *    ("valueQuantity") is an element of its own with its concrete type.
 *  - Type names are FHIR names: primitives lower-case ("date", "string", "boolean"),
 *    complex types and resources capitalised ("HumanName", "Patient").
 *  - Returned strings are static; nothing allocates; thread-safe; a lookup is one hash
 *    probe sequence (typically one or two string compares). Lengths are explicit so callers can pass slices of a
 *    larger text; parent_type / name arguments without a length are NUL-terminated.
 */
#ifndef FL_FHIR_TYPES_H
#define FL_FHIR_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every R4 resource type, plus the abstract Resource and DomainResource. */
bool fhir_is_resource_type(const char *name, size_t len);
/* A FHIR primitive type name ("date", "code", "positiveInt"...). */
bool fhir_is_primitive_type(const char *name, size_t len);
/* Any known type: primitive, complex, resource or synthetic backbone ("Patient.contact"). */
bool fhir_is_type(const char *name, size_t len);
/* The type it specializes ("Patient" -> "DomainResource", "Age" -> "Quantity",
 * "code" -> "string", "Patient.contact" -> "BackboneElement"); NULL for Element, Resource
 * and unknown names. */
const char *fhir_type_base(const char *name, size_t len);
/* True if type is ancestor or derives from it (fhir_type_is_a("Age", "Quantity")). */
bool fhir_type_is_a(const char *type, const char *ancestor);

/* FHIR type of element `elem` of `parent_type`; NULL if unknown or a choice base. */
const char *fhir_element_type(const char *parent_type, const char *elem, size_t elem_len);
/* True if the element may repeat (max > 1); false if single or unknown. */
bool fhir_element_is_array(const char *parent_type, const char *elem, size_t elem_len);
/* For a choice element base ("value" or "value[x]"): its types in definition order,
 * "|"-separated ("Quantity|CodeableConcept|string|..."); NULL if not a choice element. */
const char *fhir_choice_types(const char *parent_type, const char *elem_base);

/* ---- One lookup returning everything (hot paths) ---- */
enum {
    FHIR_ELEM_ARRAY = 1,           /* max > 1 */
    FHIR_ELEM_CHOICE = 2,          /* base of a choice element: type NULL, choices set */
    FHIR_ELEM_CHOICE_VARIANT = 4,  /* valueQuantity: one type of a choice element */
    FHIR_ELEM_BACKBONE = 8         /* type is a synthetic backbone type */
};
typedef struct fhir_elem_ent {
    const char *name;     /* element name as in JSON ("birthDate", "valueQuantity") */
    const char *type;     /* FHIR type name, NULL for a choice base */
    const char *choices;  /* choice base only: "|"-separated types */
    uint8_t flags;        /* FHIR_ELEM_* */
    uint8_t name_len;
    uint16_t owner;       /* index in fhir_r4_types of the type it belongs to */
} fhir_elem_ent;

const fhir_elem_ent *fhir_element(const char *parent_type, size_t parent_len,
                                  const char *elem, size_t elem_len);

/* ---- Table layout, shared by the generated fhir_types_r4.c and fhir_types.c ---- */
enum fhir_kind {
    FHIR_KIND_PRIMITIVE = 1,
    FHIR_KIND_COMPLEX,
    FHIR_KIND_RESOURCE,
    FHIR_KIND_BACKBONE
};
typedef struct fhir_type_ent {
    const char *name;
    const char *base;      /* NULL for roots */
    uint8_t kind;          /* enum fhir_kind */
    uint8_t abstract;
    uint8_t name_len;
    uint32_t first, n;     /* its elements: fhir_r4_elems[first .. first+n), sorted by name */
} fhir_type_ent;

extern const fhir_elem_ent fhir_r4_elems[];
extern const unsigned fhir_r4_n_elems;
extern const fhir_type_ent fhir_r4_types[];   /* sorted by name (byte order) */
extern const unsigned fhir_r4_n_types;
/* Hash tables (FNV-1a of the name, or of "type.element"; linear probing; slot = index + 1,
 * 0 = empty; size = mask + 1). */
extern const uint16_t fhir_r4_type_hash[];
extern const unsigned fhir_r4_type_hash_mask;
extern const uint16_t fhir_r4_elem_hash[];
extern const unsigned fhir_r4_elem_hash_mask;

#endif
