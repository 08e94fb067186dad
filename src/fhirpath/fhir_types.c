/* fhir_types.c: lookups in the generated FHIR R4 type table (fhir_types_r4.c): binary
 * search for the type, then for the element among that type's sorted elements. */
#include <string.h>

#include "fhir_types.h"

/* Byte-order comparison of key[0..len) with the NUL-terminated s, as the generator sorts. */
static int cmp_slice(const char *key, size_t len, const char *s)
{
    size_t sl = strlen(s);
    int c = memcmp(key, s, len < sl ? len : sl);
    if (c) return c;
    return len < sl ? -1 : len > sl ? 1 : 0;
}

static const fhir_type_ent *find_type(const char *name, size_t len)
{
    if (!name) return NULL;
    size_t lo = 0, hi = fhir_r4_n_types;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_slice(name, len, fhir_r4_types[mid].name);
        if (c == 0) return &fhir_r4_types[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const fhir_elem_ent *fhir_element(const char *parent_type, size_t parent_len,
                                  const char *elem, size_t elem_len)
{
    const fhir_type_ent *t = find_type(parent_type, parent_len);
    if (!t || !elem) return NULL;
    size_t lo = t->first, hi = (size_t)t->first + t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_slice(elem, elem_len, fhir_r4_elems[mid].name);
        if (c == 0) return &fhir_r4_elems[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
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
