/*
 * hrapi.c — the storage of the legacy HR example: one text file of employees in the data
 * directory (employees.tsv: a "#next N" line, then one line per employee, tab-separated,
 * tabs, newlines and backslashes escaped), read and rewritten whole under an exclusive
 * flock(2) of employees.lock for every call, and replaced by rename(2) so a crash never
 * leaves half a file. Two processes on one directory see each other's changes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hrapi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct hr_session {
    char *dir;
    char error[512];
};

typedef struct {
    long number;
    char *login, *first, *last, *email, *reference;
    int32_t active;
} employee;

typedef struct {
    long next;
    employee *e;
    size_t n, cap;
    int lock_fd;
} store;

static int fail(hr_session *s, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    return code;
}

static char *unescape(const char *p, size_t n) {
    char *out = malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            i++;
            *o++ = p[i] == 't' ? '\t' : p[i] == 'n' ? '\n' : p[i];
        } else {
            *o++ = p[i];
        }
    }
    *o = 0;
    return out;
}

static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\t') fputs("\\t", f);
        else if (*s == '\n') fputs("\\n", f);
        else if (*s == '\\') fputs("\\\\", f);
        else fputc(*s, f);
    }
}

static void free_store(store *st) {
    for (size_t i = 0; i < st->n; i++) { free(st->e[i].login); free(st->e[i].first); free(st->e[i].last); free(st->e[i].email); free(st->e[i].reference); }
    free(st->e);
    if (st->lock_fd >= 0) { flock(st->lock_fd, LOCK_UN); close(st->lock_fd); }
}

static char *path_in(hr_session *s, const char *name) {
    char *p;
    if (asprintf(&p, "%s/%s", s->dir, name) < 0) return NULL;
    return p;
}

/* Locks the store and reads it. */
static int load(hr_session *s, store *st) {
    memset(st, 0, sizeof *st);
    st->next = 1;
    char *lock = path_in(s, "employees.lock");
    st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lock);
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX) != 0) return fail(s, HR_EIO, "cannot lock %s/employees.lock: %s", s->dir, strerror(errno));
    char *data = path_in(s, "employees.tsv");
    FILE *f = fopen(data, "r");
    free(data);
    if (!f) return errno == ENOENT ? HR_OK : fail(s, HR_EIO, "cannot read %s/employees.tsv: %s", s->dir, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n') line[--len] = 0;
        if (strncmp(line, "#next ", 6) == 0) { st->next = atol(line + 6); continue; }
        const char *field[7];
        size_t flen[7], k = 0;
        const char *p = line;
        while (k < 7) {
            const char *q = p;
            while (*q && *q != '\t') q += (*q == '\\' && q[1]) ? 2 : 1;
            field[k] = p; flen[k] = (size_t)(q - p); k++;
            if (!*q) break;
            p = q + 1;
        }
        if (k != 7 || line[0] != 'E') continue;
        if (st->n == st->cap) { st->cap = st->cap ? 2 * st->cap : 64; st->e = realloc(st->e, st->cap * sizeof(employee)); }
        employee *e = &st->e[st->n++];
        e->number = atol(field[0] + 1);
        e->login = unescape(field[1], flen[1]);
        e->first = unescape(field[2], flen[2]);
        e->last = unescape(field[3], flen[3]);
        e->email = unescape(field[4], flen[4]);
        e->reference = unescape(field[5], flen[5]);
        e->active = field[6][0] == '1';
    }
    free(line);
    fclose(f);
    return HR_OK;
}

/* Writes the store back (a new file renamed over the old one). */
static int save(hr_session *s, store *st) {
    char *data = path_in(s, "employees.tsv"), *tmp = path_in(s, "employees.tsv.new");
    FILE *f = fopen(tmp, "w");
    if (!f) { int e = errno; free(data); free(tmp); return fail(s, HR_EIO, "cannot write %s/employees.tsv.new: %s", s->dir, strerror(e)); }
    fprintf(f, "#next %ld\n", st->next);
    for (size_t i = 0; i < st->n; i++) {
        employee *e = &st->e[i];
        fprintf(f, "E%06ld\t", e->number);
        put_escaped(f, e->login); fputc('\t', f);
        put_escaped(f, e->first); fputc('\t', f);
        put_escaped(f, e->last); fputc('\t', f);
        put_escaped(f, e->email); fputc('\t', f);
        put_escaped(f, e->reference); fputc('\t', f);
        fprintf(f, "%d\n", e->active ? 1 : 0);
    }
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    ok = ok && rename(tmp, data) == 0;
    int e = errno;
    free(data); free(tmp);
    return ok ? HR_OK : fail(s, HR_EIO, "cannot replace %s/employees.tsv: %s", s->dir, strerror(e));
}

static long parse_number(const char *id) {
    if (!id || id[0] != 'E' || !id[1]) return -1;
    char *end;
    long n = strtol(id + 1, &end, 10);
    return *end || n <= 0 ? -1 : n;
}

static employee *find(store *st, long number) {
    for (size_t i = 0; i < st->n; i++) if (st->e[i].number == number) return &st->e[i];
    return NULL;
}

static employee *find_login(store *st, const char *login, long except) {
    for (size_t i = 0; i < st->n; i++) if (st->e[i].number != except && strcasecmp(st->e[i].login, login) == 0) return &st->e[i];
    return NULL;
}

static int copy_out(hr_session *s, char *out, size_t out_len, const char *value) {
    size_t n = strlen(value);
    if (!out || n + 1 > out_len) return fail(s, HR_ETOOSMALL, "an output buffer of %zu bytes is too small for %zu", out_len, n + 1);
    memcpy(out, value, n + 1);
    return HR_OK;
}

static char *dup_or_empty(const char *v) { return strdup(v ? v : ""); }

hr_session *hr_open(const char *data_dir) {
    if (!data_dir || !*data_dir) return NULL;
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) return NULL;
    struct stat st;
    if (stat(data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    hr_session *s = calloc(1, sizeof *s);
    s->dir = strdup(data_dir);
    return s;
}

void hr_close(hr_session *s) {
    if (!s) return;
    free(s->dir);
    free(s);
}

const char *hr_last_error(hr_session *s) { return s ? s->error : "no session"; }

/* The test hook (hrapi.h): whether adding this login should crash. */
static int crash_wanted(hr_session *s, const char *login) {
    char *path = path_in(s, "crash-on-add"), text[256] = {0};
    FILE *f = fopen(path, "r");
    free(path);
    if (!f) return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r')) text[--n] = 0;
    return strcmp(text, login) == 0;
}

int hr_add_employee(hr_session *s, const char *login, const char *first_name, const char *last_name,
                    const char *email, const char *reference, int32_t active, char *out_id, size_t out_len) {
    s->error[0] = 0;
    if (!login || !*login) return fail(s, HR_EINVAL, "a login is required");
    if (crash_wanted(s, login)) *(volatile int *)0 = 1;
    if (out_len < 8) return fail(s, HR_ETOOSMALL, "the id buffer needs 8 bytes");
    store st;
    int rc = load(s, &st);
    if (rc == HR_OK && find_login(&st, login, -1)) rc = fail(s, HR_EDUPLICATE, "login %s is taken", login);
    if (rc == HR_OK) {
        if (st.n == st.cap) { st.cap = st.cap ? 2 * st.cap : 64; st.e = realloc(st.e, st.cap * sizeof(employee)); }
        employee *e = &st.e[st.n++];
        e->number = st.next++;
        e->login = strdup(login); e->first = dup_or_empty(first_name); e->last = dup_or_empty(last_name);
        e->email = dup_or_empty(email); e->reference = dup_or_empty(reference); e->active = active != 0;
        char id[32];
        snprintf(id, sizeof id, "E%06ld", e->number);
        rc = copy_out(s, out_id, out_len, id);
        if (rc == HR_OK) rc = save(s, &st);
    }
    free_store(&st);
    return rc;
}

/* Locks and reads the store, and finds the employee numbered `id` (the store is loaded, to
 * be freed, whatever the result). */
static int load_employee(hr_session *s, const char *id, store *st, employee **e) {
    s->error[0] = 0;
    *e = NULL;
    int rc = load(s, st);
    long number = parse_number(id);
    if (rc == HR_OK) *e = number < 0 ? NULL : find(st, number);
    if (rc == HR_OK && !*e) rc = fail(s, HR_ENOTFOUND, "no employee %s", id ? id : "(null)");
    return rc;
}

int hr_get_employee(hr_session *s, const char *id, char *login, size_t login_len, char *first_name, size_t first_len,
                    char *last_name, size_t last_len, char *email, size_t email_len, char *reference, size_t reference_len,
                    int32_t *active) {
    store st;
    employee *e;
    int rc = load_employee(s, id, &st, &e);
    if (rc == HR_OK) rc = copy_out(s, login, login_len, e->login);
    if (rc == HR_OK) rc = copy_out(s, first_name, first_len, e->first);
    if (rc == HR_OK) rc = copy_out(s, last_name, last_len, e->last);
    if (rc == HR_OK) rc = copy_out(s, email, email_len, e->email);
    if (rc == HR_OK) rc = copy_out(s, reference, reference_len, e->reference);
    if (rc == HR_OK && active) *active = e->active;
    free_store(&st);
    return rc;
}

int hr_update_employee(hr_session *s, const char *id, const char *login, const char *first_name, const char *last_name,
                       const char *email, const char *reference, int32_t active) {
    if (!login || !*login) return fail(s, HR_EINVAL, "a login is required");
    store st;
    employee *e;
    int rc = load_employee(s, id, &st, &e);
    if (rc == HR_OK && find_login(&st, login, e->number)) rc = fail(s, HR_EDUPLICATE, "login %s is taken", login);
    if (rc == HR_OK) {
        free(e->login); free(e->first); free(e->last); free(e->email); free(e->reference);
        e->login = strdup(login); e->first = dup_or_empty(first_name); e->last = dup_or_empty(last_name);
        e->email = dup_or_empty(email); e->reference = dup_or_empty(reference); e->active = active != 0;
        rc = save(s, &st);
    }
    free_store(&st);
    return rc;
}

int hr_remove_employee(hr_session *s, const char *id) {
    store st;
    employee *e;
    int rc = load_employee(s, id, &st, &e);
    if (rc == HR_OK) {
        free(e->login); free(e->first); free(e->last); free(e->email); free(e->reference);
        size_t i = (size_t)(e - st.e);
        memmove(&st.e[i], &st.e[i + 1], (st.n - i - 1) * sizeof(employee));
        st.n--;
        rc = save(s, &st);
    }
    free_store(&st);
    return rc;
}

int hr_find_by_login(hr_session *s, const char *login, char *out_id, size_t out_len) {
    s->error[0] = 0;
    if (!login) return fail(s, HR_EINVAL, "a login is required");
    store st;
    int rc = load(s, &st);
    employee *e = rc == HR_OK ? find_login(&st, login, -1) : NULL;
    if (rc == HR_OK && !e) rc = fail(s, HR_ENOTFOUND, "no employee with login %s", login);
    if (rc == HR_OK) {
        char id[32];
        snprintf(id, sizeof id, "E%06ld", e->number);
        rc = copy_out(s, out_id, out_len, id);
    }
    free_store(&st);
    return rc;
}

int hr_next_employee(hr_session *s, int64_t *position, char *out_id, size_t out_len) {
    s->error[0] = 0;
    if (!position) return fail(s, HR_EINVAL, "a position is required");
    store st;
    int rc = load(s, &st);
    employee *best = NULL;
    for (size_t i = 0; rc == HR_OK && i < st.n; i++)
        if (st.e[i].number > *position && (!best || st.e[i].number < best->number)) best = &st.e[i];
    if (rc == HR_OK && !best) rc = HR_END;
    if (rc == HR_OK) {
        char id[32];
        snprintf(id, sizeof id, "E%06ld", best->number);
        rc = copy_out(s, out_id, out_len, id);
        if (rc == HR_OK) *position = best->number;
    }
    free_store(&st);
    return rc;
}
