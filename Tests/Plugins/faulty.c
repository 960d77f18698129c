/* A connector for the isolation tests: its `get` fails the way FAULT says (segv: a NULL
 * dereference; abort; hang: never returns; oom: allocates until malloc fails, then aborts, as
 * most code does; none: the fixed build). create hands back what it was given with an id;
 * search finds nothing. Built by `make plugins-test` into plugins-test/faulty-<FAULT>.so. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scim_connector.h"

#define FAULT_NONE 0
#define FAULT_SEGV 1
#define FAULT_ABORT 2
#define FAULT_HANG 3
#define FAULT_OOM 4
#ifndef FAULT
#define FAULT FAULT_NONE
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

struct scimc_instance {
    const scimc_host *host;
};

static atomic_long next_id = 1;

static scimc_status f_open(const scimc_host *host, scimc_call *call, const char *app, scimc_buf settings, scimc_instance **out) {
    (void)call; (void)app; (void)settings;
    scimc_instance *in = calloc(1, sizeof *in);
    if (!in) return SCIMC_INTERNAL;
    in->host = host;
    *out = in;
    return SCIMC_OK;
}

static void f_close(scimc_instance *in) { free(in); }

static scimc_status f_create(scimc_instance *in, scimc_call *call, scimc_buf resource) {
    const char *brace = memchr(resource.ptr, '{', resource.len);
    if (!brace) {
        static const char msg[] = "not an object";
        in->host->fail(call, NULL, msg, sizeof msg - 1);
        return SCIMC_BAD_REQUEST;
    }
    size_t rest = resource.len - (size_t)(brace + 1 - resource.ptr);
    char head[64];
    int n = snprintf(head, sizeof head, "{\"id\":\"%ld\",", atomic_fetch_add(&next_id, 1));
    char *out = malloc((size_t)n + rest);
    if (!out) return SCIMC_INTERNAL;
    memcpy(out, head, (size_t)n);
    memcpy(out + n, brace + 1, rest);
    in->host->emit(call, out, (size_t)n + rest);
    free(out);
    return SCIMC_OK;
}

static scimc_status f_get(scimc_instance *in, scimc_call *call, scimc_buf id) {
#if FAULT == FAULT_SEGV
    volatile int *nothing = NULL;
    *nothing = 1;
#elif FAULT == FAULT_ABORT
    abort();
#elif FAULT == FAULT_HANG
    for (;;) pause();
#elif FAULT == FAULT_OOM
    for (;;) {
        char *p = malloc(16 << 20);
        if (!p) abort();
        memset(p, 1, 16 << 20);
    }
#endif
    char out[512];
    int n = snprintf(out, sizeof out, "{\"id\":\"%.*s\",\"userName\":\"user-%.*s\"}", (int)id.len, id.ptr, (int)id.len, id.ptr);
    in->host->emit(call, out, (size_t)n);
    return SCIMC_OK;
}

static scimc_status f_search(scimc_instance *in, scimc_call *call, scimc_buf query) {
    (void)query;
    static const char none[] = "{\"Resources\":[],\"filtered\":false}";
    in->host->emit(call, none, sizeof none - 1);
    return SCIMC_OK;
}

static const scimc_resource_ops user_ops = {
    .struct_size = sizeof(scimc_resource_ops), .create = f_create, .get = f_get, .search = f_search,
};

static const scimc_connector descriptor = {
    .struct_size = sizeof(scimc_connector),
    .abi_major = SCIMC_ABI_MAJOR,
    .abi_minor = SCIMC_ABI_MINOR,
    .name = "faulty",
    .version = "1.0.0+fault" STR(FAULT),
    .flags = SCIMC_FLAG_CONCURRENT | SCIMC_FLAG_UNLOADABLE,
    .open = f_open,
    .close = f_close,
    .users = &user_ops,
};

__attribute__((visibility("default"))) const scimc_connector *scimc_connector_entry(void) { return &descriptor; }
