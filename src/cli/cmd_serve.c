/* cmd_serve.c: `fhirlake serve [--port N] [--data DIR] [--listen ADDR] [--max-body BYTES]
 * [--threads N] [--sync full|normal]` — opens the store, starts the HTTP server, prints the
 * base URL, and shuts down gracefully on SIGTERM/SIGINT (in-flight requests finish, the
 * store closes cleanly). Operations of other rooms are registered in register_operations(). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "server/op_view.h"
#include "server/server.h"
#include "store/store.h"
#include "subs/subs.h"

/* The one place that lists $operations of other rooms: add a call here, e.g.
 * sof_register_http(s). Each uses http_register_operation() (see server/server.h). */
static void register_operations(store *s)
{
    (void)s;
}

static int usage(void)
{
    fprintf(stderr, "usage: fhirlake serve [--port N] [--data DIR] [--listen ADDR]"
                    " [--max-body BYTES] [--threads N] [--sync full|normal]\n");
    return 2;
}

int cmd_serve(int argc, char **argv)
{
    http_config cfg = {.listen = "127.0.0.1", .port = 8080, .threads = 0};
    store_opts so = {.sync = STORE_SYNC_FULL};
    const char *data = "./data";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(a, "--port")) cfg.port = atoi(v);
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--listen")) cfg.listen = v;
        else if (!strcmp(a, "--max-body")) cfg.max_body = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads")) cfg.threads = atoi(v);
        else if (!strcmp(a, "--sync")) so.sync = !strcmp(v, "normal") ? STORE_SYNC_NORMAL : STORE_SYNC_FULL;
        else return usage();
        i++;
    }
    mkdir(data, 0755);
    /* Block the stop signals in every thread; the main thread waits for them below. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(data, &so, &err);
    if (!s) {
        fprintf(stderr, "fhirlake: %s\n", err.msg);
        return 1;
    }
    register_operations(s);
    /* subscriptions: listener + delivery workers, before the server takes writes */
    subs *sb = subs_open(s, data, &err);
    if (!sb) {
        fprintf(stderr, "fhirlake: %s\n", err.msg);
        store_close(s);
        return 1;
    }
    subs_register_http(sb);
    op_view_ctx *views = op_view_register(s, data, &err); /* SQL-on-FHIR ops + export engine */
    http_server *h = views ? http_start(&cfg, s, &err) : NULL;
    if (!h) {
        fprintf(stderr, "fhirlake: %s\n", err.msg);
        op_view_shutdown(views);
        subs_close(sb);
        store_close(s);
        return 1;
    }
    printf("fhirlake: serving http://%s:%d/fhir (data in %s)\n", cfg.listen, http_port(h), data);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fl_log(FL_LOG_INFO, "signal %d: shutting down", sig);
    http_stop(h);
    op_view_shutdown(views);
    subs_close(sb);
    store_close(s);
    return 0;
}
