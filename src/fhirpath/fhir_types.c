/* fhir_types.c: lookups in the generated FHIR R4 type table (fhir_types_r4.c) through its
 * two hash tables: types by name, elements by "type.element". */
#include <string.h>

#include "fhir_types.h"

/* FNV-1a, the same function as scripts/gen_fhir_types.mjs. */
#define FNV0 2166136261u
static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static bool same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

static const fhir_type_ent *find_type(const char *name, size_t len)
{
    if (!name) return NULL;
    for (uint32_t i = fnv(FNV0, name, len) & fhir_r4_type_hash_mask; fhir_r4_type_hash[i];
         i = (i + 1) & fhir_r4_type_hash_mask) {
        const fhir_type_ent *t = &fhir_r4_types[fhir_r4_type_hash[i] - 1];
        if (same(t->name, t->name_len, name, len)) return t;
    }
    return NULL;
}

const fhir_elem_ent *fhir_element(const char *parent_type, size_t parent_len,
                                  const char *elem, size_t elem_len)
{
    if (!parent_type || !elem) return NULL;
    uint32_t h = fnv(fnv(fnv(FNV0, parent_type, parent_len), ".", 1), elem, elem_len);
    for (uint32_t i = h & fhir_r4_elem_hash_mask; fhir_r4_elem_hash[i];
         i = (i + 1) & fhir_r4_elem_hash_mask) {
        const fhir_elem_ent *e = &fhir_r4_elems[fhir_r4_elem_hash[i] - 1];
        const fhir_type_ent *t = &fhir_r4_types[e->owner];
        if (same(e->name, e->name_len, elem, elem_len) &&
            same(t->name, t->name_len, parent_type, parent_len))
            return e;
    }
    return NULL;
}

static const fhir_elem_ent *elem_nt(const char *parent_type, const char *elem, size_t len)
{
    if (!parent_type) return NULL;
    return fhir_element(parent_type, strlen(parent_type), elem, len);
}

bool fhir_is_resource_type(const char *name, size_t len)
{
    const fhir_type_ent *t = find_type(name, len);
    return t && t->kind == FHIR_KIND_RESOURCE;
}

bool fhir_is_primitive_type(const char *name, size_t len)
{
    const fhir_type_ent *t = find_type(name, len);
    return t && t->kind == FHIR_KIND_PRIMITIVE;
}

bool fhir_is_type(const char *name, size_t len)
{
    return find_type(name, len) != NULL;
}

const char *fhir_type_base(const char *name, size_t len)
{
    const fhir_type_ent *t = find_type(name, len);
    return t ? t->base : NULL;
}

bool fhir_type_is_a(const char *type, const char *ancestor)
{
    if (!type || !ancestor) return false;
    /* The deepest R4 chain is short (Age -> Quantity -> Element); the bound guards
     * against a malformed table ever looping. */
    for (int depth = 0; type && depth < 16; depth++) {
        if (strcmp(type, ancestor) == 0) return true;
        type = fhir_type_base(type, strlen(type));
    }
    return false;
}

const char *fhir_element_type(const char *parent_type, const char *elem, size_t elem_len)
{
    const fhir_elem_ent *e = elem_nt(parent_type, elem, elem_len);
    return e ? e->type : NULL;
}

bool fhir_element_is_array(const char *parent_type, const char *elem, size_t elem_len)
{
    const fhir_elem_ent *e = elem_nt(parent_type, elem, elem_len);
    return e && (e->flags & FHIR_ELEM_ARRAY);
}

const char *fhir_choice_types(const char *parent_type, const char *elem_base)
{
    if (!elem_base) return NULL;
    size_t len = strlen(elem_base);
    if (len > 3 && strcmp(elem_base + len - 3, "[x]") == 0) len -= 3;
    const fhir_elem_ent *e = elem_nt(parent_type, elem_base, len);
    return e && (e->flags & FHIR_ELEM_CHOICE) ? e->choices : NULL;
}
