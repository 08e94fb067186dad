/* cli: the `fhirlake` command line. main.c dispatches; each cmd_*.c owns one command.
 * argv[0] of each cmd_* is the command name; they return the process exit code
 * (0 ok, 1 failure of the work, 2 usage error). */
#ifndef FL_CLI_H
#define FL_CLI_H

#include "../sof/sof.h"

int cmd_serve(int argc, char **argv);        /* fhirlake serve [--port N] [--data DIR] [--listen ADDR] */
int cmd_load(int argc, char **argv);         /* fhirlake load FILE... --data DIR */
int cmd_view_run(int argc, char **argv);     /* fhirlake view run VIEW.json [INPUT...] */
int cmd_view_export(int argc, char **argv);  /* fhirlake view export VIEW.json INPUT... --to PATH */
int cmd_sof_test(int argc, char **argv);     /* fhirlake sof-test FILE... [--report R.json] */

/* Reads and compiles a ViewDefinition file; NULL with err set (404 unreadable, 400/422
 * invalid view, where naming the element). */
sof_view *cli_load_view(const char *path, unsigned flags, fl_err *err);

/* Input helpers (cli_input.c). A read-only private mapping of a whole regular file. */
typedef struct cli_mapping {
    const char *p;
    size_t len;
} cli_mapping;
/* Maps name if it is a non-empty regular file; false (m->p NULL) to fall back to reading. */
bool cli_map_file(const char *name, cli_mapping *m);
void cli_unmap(cli_mapping *m);
/* Drops the whole pages inside [p, p+len) of a mapping from the resident set (they stay
 * in the page cache), so RSS stays bounded whatever the file size. */
void cli_release_mapped(const char *p, size_t len);
/* True if the first non-empty line of p[0..n) is a whole JSON value (NDJSON); complete =
 * p holds the whole input. */
bool cli_looks_ndjson(const char *p, size_t n, bool complete);
long cli_count_lines(const char *p, size_t n);
/* End offset of a chunk starting at off: off + want, moved on past the next line end
 * (or len). */
size_t cli_cut_lines(const char *p, size_t len, size_t off, size_t want);

#endif
