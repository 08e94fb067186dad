/* secrets.h: server-side secrets referenced by name from requests ("secret:NAME"), so
 * credentials never travel in a request body, never sit in the database in clear, and
 * never appear in a read or a log line.
 *
 * Contract:
 *  - The secrets file is $FHIRLAKE_SECRETS_FILE, else DATA/secrets.json: one JSON object
 *    {"NAME": "value", ...}. It is read at each resolution (rotation needs no restart).
 *  - secrets_resolve accepts only references; a clear value is refused (400) without being
 *    echoed. Errors name the parameter and the secret's name, never a value.
 */
#ifndef FL_SECRETS_H
#define FL_SECRETS_H

#include "../util/util.h"

#define SECRETS_PREFIX "secret:"

bool secrets_is_ref(const char *value);
/* *out gets a malloc'd copy of the secret (caller wipes and frees it). */
int secrets_resolve(const char *data_dir, const char *param, const char *ref, char **out,
                    fl_err *err);

#endif
