/* secrets.c: resolution of "secret:NAME" references against the server's secrets file
 * (see secrets.h). Owns: locating and reading the file, lookup, wiping buffers. */
#include "secrets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../json/json.h"

bool secrets_is_ref(const char *value)
{
    return value && !strncmp(value, SECRETS_PREFIX, strlen(SECRETS_PREFIX)) &&
           value[strlen(SECRETS_PREFIX)];
}

int secrets_resolve(const char *data_dir, const char *param, const char *ref, char **out,
                    fl_err *err)
{
    *out = NULL;
    if (!secrets_is_ref(ref)) {
        fl_err_set(err, 400, param, "%s must be a secret reference (\"" SECRETS_PREFIX
                                    "NAME\", resolved from the server's secrets file), "
                                    "not a value", param);
        return -1;
    }
    const char *name = ref + strlen(SECRETS_PREFIX);
    const char *env = getenv("FHIRLAKE_SECRETS_FILE");
    buf path = BUF_INIT, text = BUF_INIT;
    if (env && *env) buf_puts(&path, env);
    else buf_printf(&path, "%s/secrets.json", data_dir ? data_dir : ".");
    int rc = -1;
    if (buf_read_file(&text, path.p) != 0) {
        fl_err_set(err, 400, param, "secret '%.80s' cannot be resolved: secrets file %s: %s",
                   name, path.p, strerror(errno));
    } else {
        arena *a = arena_new(0);
        fl_err perr = {0};
        json_val *v = json_parse(a, text.p ? text.p : "", text.len, NULL, &perr);
        const char *val = v ? json_get_str(v, name) : NULL;
        if (!v || !json_is(v, JSON_OBJECT))
            fl_err_set(err, 500, param, "secrets file %s is not a JSON object", path.p);
        else if (!val || !*val)
            fl_err_set(err, 400, param, "secret '%.80s' is not in the secrets file", name);
        else {
            *out = strdup(val);
            if (!*out) abort();
            rc = 0;
        }
        arena_free(a);
    }
    if (text.p) explicit_bzero(text.p, text.len);
    buf_free(&text);
    buf_free(&path);
    return rc;
}
