/* cli_view.c: loading a ViewDefinition file for the commands that take one. */
#include <stdio.h>

#include "../json/json.h"
#include "cli.h"

sof_view *cli_load_view(const char *path, unsigned flags, fl_err *err)
{
    buf text = BUF_INIT;
    if (buf_read_file(&text, path)) {
        buf_free(&text);
        fl_err_set(err, 404, path, "cannot read view %s", path);
        return NULL;
    }
    arena *a = arena_new(0);
    json_val *j = json_parse(a, text.p ? text.p : "", text.len, NULL, err);
    sof_view *v = j ? sof_compile(j, flags, err) : NULL;
    buf_free(&text);
    arena_free(a);
    return v;
}
