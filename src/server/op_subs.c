/* op_subs.c: the HTTP face of the subs room — registers AidboxSubscriptionTopic,
 * AidboxTopicDestination (and ViewDefinition, which destinations name) as resource types,
 * their write validators, the destination's secret-redacting rewrite hook, and GET /fhir/AidboxTopicDestination/<id>/$status. */
#include "../subs/subs.h"
#include "server.h"

#include <string.h>

static int validate_topic(void *ctx, const json_val *res, fl_err *err)
{
    (void)ctx;
    return subs_validate_topic(res, err);
}

static int validate_dest(void *ctx, const json_val *res, fl_err *err)
{
    return subs_validate_destination(ctx, res, err);
}

static int rewrite_dest(void *ctx, const json_val *res, const char *id, arena *a, json_val **out,
                        fl_err *err)
{
    return subs_rewrite_destination(ctx, res, id, a, out, err);
}

static int op_status(void *ctx, const http_req *req, http_resp *resp)
{
    if (strcmp(req->method, "GET")) {
        http_outcome(resp, 405, "$status takes GET", NULL);
        return 405;
    }
    fl_err err;
    fl_err_clear(&err);
    buf_reset(&resp->body);
    if (subs_status(ctx, req->id, &resp->body, &err)) {
        buf_reset(&resp->body);
        http_outcome_err(resp, &err);
        return resp->status;
    }
    return 200;
}

void subs_register_http(subs *sb)
{
    http_register_type("ViewDefinition");
    http_register_type(SUBS_TOPIC_TYPE);
    http_register_type(SUBS_DEST_TYPE);
    http_register_validator(SUBS_TOPIC_TYPE, validate_topic, NULL);
    http_register_validator(SUBS_DEST_TYPE, validate_dest, sb);
    http_register_rewriter(SUBS_DEST_TYPE, rewrite_dest, sb);
    http_register_operation("status", HTTP_OP_INSTANCE, SUBS_DEST_TYPE, op_status, sb);
}
