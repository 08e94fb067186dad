/* cli_view.c: loading a ViewDefinition file for the commands that take one. */
#include <stdio.h>

#include "../json/json.h"
#include "cli.h"

sof_view *cli_load_view(const char *path, unsigned flags, fl_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fl_err_set(err, 404, path, "cannot open view %s", path);
        return NULL;
    }
    buf text = BUF_INIT;
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) buf_put(&text, tmp, k);
    fclose(f);
    arena *a = arena_new(0);
    json_val *j = json_parse(a, text.p ? text.p : "", text.len, NULL, err);
    sof_view *v = j ? sof_compile(j, flags, err) : NULL;
    buf_free(&text);
    arena_free(a);
    return v;
}
