/* main.c: `fhirlake` entry point; dispatches to one cmd_* per command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define FHIRLAKE_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "fhirlake %s: a FHIR R4 server that keeps Delta Lake tables in step\n\n"
            "usage:\n"
            "  fhirlake serve [--port N] [--data DIR] [--listen ADDR]\n"
            "  fhirlake load FILE... --data DIR\n"
            "  fhirlake view run VIEW.json [INPUT...] [--format ndjson|csv|json|parquet] [--out FILE]\n"
            "  fhirlake view export VIEW.json INPUT... --to PATH [--mode merge|append|overwrite]\n"
            "  fhirlake sof-test FILE... [--report REPORT.json]\n"
            "  fhirlake version\n",
            FHIRLAKE_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "load")) return cmd_load(argc - 1, argv + 1);
    if (!strcmp(cmd, "sof-test")) return cmd_sof_test(argc - 1, argv + 1);
    if (!strcmp(cmd, "view") && argc >= 3) {
        if (!strcmp(argv[2], "run")) return cmd_view_run(argc - 2, argv + 2);
        if (!strcmp(argv[2], "export")) return cmd_view_export(argc - 2, argv + 2);
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("fhirlake %s\n", FHIRLAKE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "fhirlake: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
