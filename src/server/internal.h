/* internal.h: what the server room's files share with each other (not a public contract). */
#ifndef FL_SERVER_INTERNAL_H
#define FL_SERVER_INTERNAL_H

#include "server.h"

/* fhir.c: routes one complete request under /fhir; fills resp. */
void fhir_dispatch(http_req *req, http_resp *resp);
/* bundle.c: POST /fhir with a batch or transaction Bundle. */
void fhir_bundle(http_req *req, json_val *bundle, http_resp *resp);
/* fhir.c: the stored resource body plus ETag / Last-Modified / Location headers. */
void fhir_put_resource_headers(http_req *req, http_resp *resp, const char *type,
                               const char *id, int64_t version, int64_t ts, bool location);
/* 0 for none; -2 if malformed; else the version number from W/"n", "n" or n. */
int64_t fhir_parse_etag(const char *h);

#endif
