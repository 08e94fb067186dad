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

#endif
