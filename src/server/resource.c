/* resource.c: FHIR resource helpers of the server room — the R4 resource type table
 * (plus registered extra types), id validation, and turning a parsed resource into the
 * stored text with meta.versionId / meta.lastUpdated spliced in by the store's render
 * callback (so the write lock only pays for a few memcpy, not a JSON serialization). */
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const R4_TYPES[] = {
    "Account", "ActivityDefinition", "AdverseEvent", "AllergyIntolerance", "Appointment",
    "AppointmentResponse", "AuditEvent", "Basic", "Binary", "BiologicallyDerivedProduct",
    "BodyStructure", "Bundle", "CapabilityStatement", "CarePlan", "CareTeam", "CatalogEntry",
    "ChargeItem", "ChargeItemDefinition", "Claim", "ClaimResponse", "ClinicalImpression",
    "CodeSystem", "Communication", "CommunicationRequest", "CompartmentDefinition",
    "Composition", "ConceptMap", "Condition", "Consent", "Contract", "Coverage",
    "CoverageEligibilityRequest", "CoverageEligibilityResponse", "DetectedIssue", "Device",
    "DeviceDefinition", "DeviceMetric", "DeviceRequest", "DeviceUseStatement",
    "DiagnosticReport", "DocumentManifest", "DocumentReference", "EffectEvidenceSynthesis",
    "Encounter", "Endpoint", "EnrollmentRequest", "EnrollmentResponse", "EpisodeOfCare",
    "EventDefinition", "Evidence", "EvidenceVariable", "ExampleScenario",
    "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal", "GraphDefinition", "Group",
    "GuidanceResponse", "HealthcareService", "ImagingStudy", "Immunization",
    "ImmunizationEvaluation", "ImmunizationRecommendation", "ImplementationGuide",
    "InsurancePlan", "Invoice", "Library", "Linkage", "List", "Location", "Measure",
    "MeasureReport", "Media", "Medication", "MedicationAdministration", "MedicationDispense",
    "MedicationKnowledge", "MedicationRequest", "MedicationStatement", "MedicinalProduct",
    "MedicinalProductAuthorization", "MedicinalProductContraindication",
    "MedicinalProductIndication", "MedicinalProductIngredient",
    "MedicinalProductInteraction", "MedicinalProductManufactured",
    "MedicinalProductPackaged", "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect", "MessageDefinition", "MessageHeader",
    "MolecularSequence", "NamingSystem", "NutritionOrder", "Observation",
    "ObservationDefinition", "OperationDefinition", "OperationOutcome", "Organization",
    "OrganizationAffiliation", "Parameters", "Patient", "PaymentNotice",
    "PaymentReconciliation", "Person", "PlanDefinition", "Practitioner", "PractitionerRole",
    "Procedure", "Provenance", "Questionnaire", "QuestionnaireResponse", "RelatedPerson",
    "RequestGroup", "ResearchDefinition", "ResearchElementDefinition", "ResearchStudy",
    "ResearchSubject", "RiskAssessment", "RiskEvidenceSynthesis", "Schedule",
    "SearchParameter", "ServiceRequest", "Slot", "Specimen", "SpecimenDefinition",
    "StructureDefinition", "StructureMap", "Subscription", "Substance",
    "SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein",
    "SubstanceReferenceInformation", "SubstanceSourceMaterial", "SubstanceSpecification",
    "SupplyDelivery", "SupplyRequest", "Task", "TerminologyCapabilities", "TestReport",
    "TestScript", "ValueSet", "VerificationResult", "VisionPrescription",
};
#define N_R4 (sizeof R4_TYPES / sizeof R4_TYPES[0])

/* Types the article's flow stores besides R4 core ones; others come by registration. */
static const char *extra_types[64] = {"ViewDefinition", "AidboxSubscriptionTopic",
                                      "AidboxTopicDestination"};
static size_t n_extra = 3;
static pthread_mutex_t extra_mu = PTHREAD_MUTEX_INITIALIZER;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void http_register_type(const char *type)
{
    pthread_mutex_lock(&extra_mu);
    if (!http_known_type(type) && n_extra < sizeof extra_types / sizeof extra_types[0])
        extra_types[n_extra++] = type;
    pthread_mutex_unlock(&extra_mu);
}

/* Validation hooks (http_register_validator); few types, a linear table is enough. */
typedef struct validator {
    const char *type;
    http_validate_fn fn;
    void *ctx;
} validator;
static validator validators[16];
static size_t n_validators;

void http_register_validator(const char *type, http_validate_fn fn, void *ctx)
{
    pthread_mutex_lock(&extra_mu);
    if (n_validators < sizeof validators / sizeof validators[0])
        validators[n_validators++] = (validator){type, fn, ctx};
    pthread_mutex_unlock(&extra_mu);
}

static int run_validator(const char *type, const json_val *res, const char *where, fl_err *err)
{
    for (size_t i = 0; i < n_validators; i++) {
        if (strcmp(validators[i].type, type)) continue;
        if (validators[i].fn(validators[i].ctx, res, err) == 0) return 0;
        if (where && *where) { /* prefix the element path with the bundle entry / line */
            buf w = BUF_INIT;
            buf_printf(&w, "%s%s%s", where, err->where[0] ? "." : "", err->where);
            size_t n = w.len < sizeof err->where ? w.len : sizeof err->where - 1;
            memcpy(err->where, w.p, n); /* a long path is cut, never overflowed */
            err->where[n] = 0;
            buf_free(&w);
        }
        return -1;
    }
    return 0;
}

/* Rewrite hooks (http_register_rewriter): rare, a linear table is enough. */
typedef struct rewriter {
    const char *type;
    http_rewrite_fn fn;
    void *ctx;
} rewriter;
static rewriter rewriters[8];
static size_t n_rewriters;

void http_register_rewriter(const char *type, http_rewrite_fn fn, void *ctx)
{
    pthread_mutex_lock(&extra_mu);
    if (n_rewriters < sizeof rewriters / sizeof rewriters[0])
        rewriters[n_rewriters++] = (rewriter){type, fn, ctx};
    pthread_mutex_unlock(&extra_mu);
}

static const rewriter *find_rewriter(const char *type)
{
    for (size_t i = 0; type && i < n_rewriters; i++)
        if (!strcmp(rewriters[i].type, type)) return &rewriters[i];
    return NULL;
}

void http_each_type(void (*fn)(void *ctx, const char *type), void *ctx)
{
    for (size_t i = 0; i < N_R4; i++) fn(ctx, R4_TYPES[i]);
    pthread_mutex_lock(&extra_mu);
    size_t n = n_extra;
    pthread_mutex_unlock(&extra_mu);
    for (size_t i = 0; i < n; i++) fn(ctx, extra_types[i]);
}

bool http_known_type(const char *type)
{
    if (!type || !*type) return false;
    if (bsearch(&type, R4_TYPES, N_R4, sizeof R4_TYPES[0], cmp_str)) return true;
    for (size_t i = 0; i < n_extra; i++)
        if (!strcmp(extra_types[i], type)) return true;
    return false;
}

void http_new_id(char out[37])
{
    /* A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Ids minted one
     * after another sort together, so inserts land on the same index pages instead of a
     * random page per resource (far fewer pages written per commit than with v4). */
    unsigned char r[16];
    fl_uuid4(out); /* random bits, and a fallback if the clock is odd */
    for (int i = 0, o = 0; i < 16; i++, o += 2) {
        if (out[o] == '-') o++;
        unsigned hi = (unsigned)(out[o] <= '9' ? out[o] - '0' : out[o] - 'a' + 10);
        unsigned lo = (unsigned)(out[o + 1] <= '9' ? out[o + 1] - '0' : out[o + 1] - 'a' + 10);
        r[i] = (unsigned char)(hi << 4 | lo);
    }
    uint64_t ms = (uint64_t)(fl_now_micros() / 1000);
    for (int i = 0; i < 6; i++) r[i] = (unsigned char)(ms >> (40 - 8 * i));
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x70);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hx[r[i] >> 4];
        out[o++] = hx[r[i] & 15];
    }
    out[o] = 0;
}

bool http_valid_id(const char *id, size_t n)
{
    if (!id || n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_'; /* '_': Aidbox ids like the article's
                                                       ViewDefinition "patient_flat" */
        if (!ok) return false;
    }
    return true;
}

void http_prepared_free(http_prepared *p)
{
    buf_free(&p->head);
    buf_free(&p->tail);
    buf_free(&p->scratch);
}

/* Appends ,"key":value for each member of obj except the skipped keys. */
static void put_members(buf *out, const json_val *obj, const char *const *skip, size_t n_skip)
{
    for (uint32_t i = 0; i < obj->len; i++) {
        const json_kv *kv = &obj->u.o[i];
        bool skipped = false;
        for (size_t k = 0; k < n_skip && !skipped; k++) skipped = !strcmp(kv->key, skip[k]);
        if (skipped) continue;
        buf_putc(out, ',');
        json_write_string(out, kv->key, kv->key_len);
        buf_putc(out, ':');
        json_write(out, &kv->val, false);
    }
}

static int check_type_and_id(const json_val *res, const char *id, const char *where,
                             const char **type_out, const char **id_out, fl_err *err)
{
    if (!json_is(res, JSON_OBJECT)) {
        fl_err_set(err, 400, where, "a resource must be a JSON object");
        return -1;
    }
    const json_val *rt = json_get(res, "resourceType");
    if (!json_is(rt, JSON_STRING)) {
        fl_err_set(err, 400, where, "resourceType is missing or not a string");
        return -1;
    }
    if (!http_known_type(rt->u.s)) {
        fl_err_set(err, 400, where, "unknown resourceType '%.100s'", rt->u.s);
        return -1;
    }
    const json_val *bid = json_get(res, "id");
    if (bid && (!json_is(bid, JSON_STRING) || !http_valid_id(bid->u.s, bid->len))) {
        fl_err_set(err, 400, where, "invalid id: must match [A-Za-z0-9\\-\\._]{1,64} (FHIR id, plus '_' as Aidbox allows)");
        return -1;
    }
    if (!id) id = bid ? bid->u.s : NULL;
    if (!id || !http_valid_id(id, strlen(id))) {
        fl_err_set(err, 400, where, "%s", id ? "invalid id" : "resource has no id");
        return -1;
    }
    *type_out = rt->u.s;
    *id_out = id;
    return 0;
}

/* Checks and starts p: everything up to the versionId value goes into head. */
static int prepare_head(const json_val *res, const char *id, http_prepared *p,
                        const char *where, fl_err *err)
{
    const char *type;
    if (check_type_and_id(res, id, where, &type, &id, err)) return -1;
    if (run_validator(type, res, where, err)) return -1;
    const json_val *meta = json_get(res, "meta");
    if (meta && !json_is(meta, JSON_OBJECT)) {
        fl_err_set(err, 400, where, "meta must be an object");
        return -1;
    }
    p->type = type;
    p->id = id;
    buf_reset(&p->head);
    buf_reset(&p->tail);
    buf_puts(&p->head, "{\"resourceType\":");
    json_write_string(&p->head, type, strlen(type));
    buf_puts(&p->head, ",\"id\":");
    json_write_string(&p->head, id, strlen(id));
    buf_puts(&p->head, ",\"meta\":{\"versionId\":\"");
    return 0;
}

static const char *const META_SKIP[] = {"versionId", "lastUpdated"};
static const char *const RES_SKIP[] = {"resourceType", "id", "meta"};

int http_prepare(const json_val *res, const char *id, http_prepared *p, const char *where,
                 fl_err *err)
{
    if (prepare_head(res, id, p, where, err)) return -1;
    const rewriter *rw = find_rewriter(p->type);
    arena *ra = NULL;
    if (rw) { /* store the hook's replacement, if it makes one */
        json_val *alt = NULL;
        ra = arena_new(0);
        if (rw->fn(rw->ctx, res, p->id, ra, &alt, err)) {
            arena_free(ra);
            return -1;
        }
        if (alt) res = alt;
    }
    const json_val *meta = json_get(res, "meta");
    buf_putc(&p->tail, '"');
    if (meta) put_members(&p->tail, meta, META_SKIP, 2);
    buf_putc(&p->tail, '}');
    put_members(&p->tail, res, RES_SKIP, 3);
    buf_putc(&p->tail, '}');
    arena_free(ra);
    return 0;
}

/* ---- raw splicing: copy members from the validated source text, no re-serialization ---- */
static size_t skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\') i++;
        else if (s[i] == '"') return i + 1;
    }
    return n;
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
    return i;
}

static size_t skip_value(const char *s, size_t i, size_t n)
{
    if (s[i] == '"') return skip_string(s, i, n);
    if (s[i] != '{' && s[i] != '[') {
        while (i < n && !strchr(",}] \t\r\n", s[i])) i++;
        return i;
    }
    int depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, i, n);
            continue;
        }
        if (c == '{' || c == '[') depth++;
        else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
        i++;
    }
    return n;
}

/* Appends ,"key":value for the members of the object at s[i] except skipped keys; the
 * value of "meta" (when meta_at) is reported instead of copied. -1 when a key has an
 * escape (compare through the DOM instead). */
static int raw_members(const char *s, size_t n, size_t i, buf *out, const char *const *skip,
                       size_t n_skip, size_t *meta_at)
{
    i = skip_ws(s, i + 1, n);
    while (i < n && s[i] == '"') {
        size_t ke = skip_string(s, i, n);
        if (memchr(s + i, '\\', ke - i)) return -1;
        size_t v = skip_ws(s, ke, n);
        v = skip_ws(s, v + 1, n); /* past ':' */
        size_t ve = skip_value(s, v, n);
        bool skipped = false;
        for (size_t k = 0; k < n_skip && !skipped; k++)
            skipped = ke - i - 2 == strlen(skip[k]) && !memcmp(s + i + 1, skip[k], ke - i - 2);
        if (meta_at && ke - i == 6 && !memcmp(s + i, "\"meta\"", 6)) *meta_at = v;
        if (!skipped) {
            buf_putc(out, ',');
            buf_put(out, s + i, ke - i);
            buf_putc(out, ':');
            buf_put(out, s + v, ve - v);
        }
        i = skip_ws(s, ve, n);
        if (i < n && s[i] == ',') i = skip_ws(s, i + 1, n);
    }
    return 0;
}

int http_prepare_raw(const json_val *res, const char *raw, size_t len, const char *id,
                     http_prepared *p, const char *where, fl_err *err)
{
    if (!raw || memchr(raw, '\n', len) || find_rewriter(json_get_str(res, "resourceType")))
        return http_prepare(res, id, p, where, err);
    if (prepare_head(res, id, p, where, err)) return -1;
    size_t start = skip_ws(raw, 0, len), meta_at = 0;
    buf_reset(&p->scratch); /* the body members, written after meta's */
    buf_putc(&p->tail, '"');
    int rc = raw_members(raw, len, start, &p->scratch, RES_SKIP, 3, &meta_at);
    if (rc == 0 && meta_at) rc = raw_members(raw, len, meta_at, &p->tail, META_SKIP, 2, NULL);
    if (rc) return http_prepare(res, id, p, where, err);
    buf_putc(&p->tail, '}');
    buf_put(&p->tail, p->scratch.p ? p->scratch.p : "", p->scratch.len);
    buf_putc(&p->tail, '}');
    return 0;
}

/* RFC 3339 with exactly six fraction digits: meta.lastUpdated shows the full commit ts. */
static void format_micros(int64_t ts, char t[40])
{
    int64_t frac = ((ts % 1000000) + 1000000) % 1000000;
    int n = fl_time_format(ts - frac, t); /* whole seconds: "...SSZ" */
    snprintf(t + n - 1, 40 - (size_t)(n - 1), ".%06lldZ", (long long)frac);
}

void http_render(void *ctx, int64_t version, int64_t ts, buf *out)
{
    const http_prepared *p = ctx;
    char t[40];
    format_micros(ts, t);
    buf_put(out, p->head.p, p->head.len);
    buf_printf(out, "%lld\",\"lastUpdated\":\"%s", (long long)version, t);
    buf_put(out, p->tail.p, p->tail.len);
}

static int cmp_key(const void *k, const void *e)
{
    return strcmp((const char *)k, *(const char *const *)e);
}

typedef struct ref_pair {
    const char *from, *to;
} ref_pair;

static int cmp_pair(const void *a, const void *b)
{
    return strcmp(((const ref_pair *)a)->from, ((const ref_pair *)b)->from);
}

void http_sort_refs(const char **from, const char **to, size_t n)
{
    ref_pair *v = n ? malloc(n * sizeof *v) : NULL;
    if (!v) return; /* n == 0, or no memory: bsearch then just misses (refs stay as written) */
    for (size_t i = 0; i < n; i++) v[i] = (ref_pair){from[i], to[i]};
    qsort(v, n, sizeof *v, cmp_pair);
    for (size_t i = 0; i < n; i++) from[i] = v[i].from, to[i] = v[i].to;
    free(v);
}

void http_rewrite_refs(arena *a, json_val *v, const char **from, const char **to, size_t n)
{
    if (!n || !v) return;
    if (v->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < v->len; i++) http_rewrite_refs(a, &v->u.a[i], from, to, n);
    } else if (v->type == JSON_OBJECT) {
        for (uint32_t i = 0; i < v->len; i++) {
            json_kv *kv = &v->u.o[i];
            if (kv->val.type == JSON_STRING && !strcmp(kv->key, "reference")) {
                const char **hit = bsearch(kv->val.u.s, from, n, sizeof *from, cmp_key);
                if (hit) {
                    const char *t = to[hit - from];
                    kv->val.u.s = arena_strdup(a, t);
                    kv->val.len = (uint32_t)strlen(t);
                }
            } else {
                http_rewrite_refs(a, &kv->val, from, to, n);
            }
        }
    }
}
