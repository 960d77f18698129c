/* make bench: the legacy HR library called directly from C, the baseline of the native
 * connector's figures. Adds N employees, then reads each back; prints the median time of an
 * add and of a get in microseconds, as JSON. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "hrapi.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: native_direct DIR N\n"); return 2; }
    int n = atoi(argv[2]);
    hr_session *s = hr_open(argv[1]);
    if (!s) { fprintf(stderr, "hr_open %s failed\n", argv[1]); return 1; }
    double *add = calloc(n, sizeof *add), *get = calloc(n, sizeof *get);
    char (*ids)[32] = calloc(n, 32);
    for (int i = 0; i < n; i++) {
        char login[64];
        snprintf(login, sizeof login, "direct%d", i);
        double t = now();
        if (hr_add_employee(s, login, "Given", "Family", "x@example.com", "", 1, ids[i], 32) != HR_OK) { fprintf(stderr, "add: %s\n", hr_last_error(s)); return 1; }
        add[i] = now() - t;
    }
    for (int i = 0; i < n; i++) {
        char login[256], first[256], last[256], email[256], ref[256];
        int32_t active;
        double t = now();
        if (hr_get_employee(s, ids[i], login, 256, first, 256, last, 256, email, 256, ref, 256, &active) != HR_OK) { fprintf(stderr, "get: %s\n", hr_last_error(s)); return 1; }
        get[i] = now() - t;
    }
    qsort(add, n, sizeof *add, cmp);
    qsort(get, n, sizeof *get, cmp);
    printf("{\"add\": %.1f, \"get\": %.1f}\n", add[n / 2], get[n / 2]);
    hr_close(s);
    return 0;
}
