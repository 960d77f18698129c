/*
 * memory — the reference connector, in plain C against scim_connector.h.
 *
 * Users and groups live in hash tables guarded by a read-write lock, so calls on one instance
 * may run concurrently. Resources are kept as the JSON text the host sent, with "id" and
 * "meta" added; group members are kept apart so that adding one member never rewrites a
 * group. A filter of the form userName eq "x" is answered from an index; any other filter is
 * left to the host ("filtered": false). Every write gives the resource a new version (meta.version),
 * which replace_if compares under the write lock. The library holds no Swift code, so it is unloadable.
 */
#include "scim_connector.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- Growable byte buffer -------------------------------------------------------------- */
typedef struct { char *p; size_t len, cap; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* ---- Minimal JSON scanning (the host sends well-formed, normalised JSON) --------------- */
static const char *ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}
static const char *skip_string(const char *p, const char *e) {
    for (p++; p < e; p++) {
        if (*p == '\\') { p++; continue; }
        if (*p == '"') return p + 1;
    }
    return NULL;
}
static const char *skip_value(const char *p, const char *e) {
    p = ws(p, e);
    if (p >= e) return NULL;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < e; p++) {
            if (*p == '"') { p = skip_string(p, e); if (!p) return NULL; p--; continue; }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') { if (--depth == 0) return p + 1; }
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n') p++;
    return p;
}

/* A top-level member of an object: the span of the whole "key":value and of the value. */
typedef struct { const char *member, *member_end, *value, *value_end; } jmember;

static int find_member(const char *p, const char *e, const char *key, jmember *out) {
    size_t klen = strlen(key);
    p = ws(p, e);
    if (p >= e || *p != '{') return 0;
    p++;
    for (;;) {
        p = ws(p, e);
        if (p >= e || *p == '}') return 0;
        if (*p == ',') { p++; continue; }
        if (*p != '"') return 0;
        const char *kstart = p + 1, *kend = skip_string(p, e);
        if (!kend) return 0;
        const char *v = ws(kend, e);
        if (v >= e || *v != ':') return 0;
        v = ws(v + 1, e);
        const char *ve = skip_value(v, e);
        if (!ve) return 0;
        if ((size_t)(kend - 1 - kstart) == klen && strncasecmp(kstart, key, klen) == 0) {
            out->member = p; out->member_end = ve; out->value = v; out->value_end = ve;
            return 1;
        }
        p = ve;
    }
}

/* The raw (still escaped) contents of a JSON string value, NUL-terminated, lowercased if asked. */
static char *string_contents(const char *v, const char *ve, int lower) {
    if (ve - v < 2 || *v != '"') return NULL;
    size_t n = (size_t)(ve - v - 2);
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = lower ? (char)tolower((unsigned char)v[1 + i]) : v[1 + i];
    s[n] = 0;
    return s;
}

/* ---- The store --------------------------------------------------------------------------- */
typedef struct entry {
    char *id;
    char *key;          /* lowercased userName (users) or displayName (groups) */
    char *body;         /* JSON members after "{": everything but id, meta and members */
    char *created;
    char *modified;
    unsigned long long version; /* changes with every write; emitted as meta.version */
    char **members;     /* groups only: member ids */
    char **member_json; /* groups only: each member object as the client sent it */
    size_t nmembers, capmembers;
    struct entry *next_id, *next_key;
} entry;

#define NBUCKETS 65536
typedef struct table {
    entry *by_id[NBUCKETS];
    entry *by_key[NBUCKETS];
    size_t count;
    entry **order;      /* insertion order, for stable listing */
    size_t norder, caporder;
} table;

/* The data of one app. It lives in a host-shared slot, not in the instance, so that the next
 * build of this library, loaded on a hot reload, opens onto the same data. */
typedef struct store {
    pthread_rwlock_t lock;
    table users, groups;
    unsigned long long versions; /* the last version given out, under the write lock */
} store;

struct scimc_instance {
    const scimc_host *host;
    store *s;
    char key[300];
};

static uint32_t hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 16777619u; }
    return h % NBUCKETS;
}

static entry *lookup_id(table *t, const char *id, size_t len) {
    char tmp[128];
    if (len >= sizeof tmp) return NULL;
    memcpy(tmp, id, len); tmp[len] = 0;
    for (entry *e = t->by_id[hash(tmp)]; e; e = e->next_id) if (strcmp(e->id, tmp) == 0) return e;
    return NULL;
}
static entry *lookup_key(table *t, const char *key) {
    for (entry *e = t->by_key[hash(key)]; e; e = e->next_key) if (strcmp(e->key, key) == 0) return e;
    return NULL;
}
static void link_key(table *t, entry *e) { uint32_t h = hash(e->key); e->next_key = t->by_key[h]; t->by_key[h] = e; }
static void unlink_key(table *t, entry *e) {
    for (entry **pp = &t->by_key[hash(e->key)]; *pp; pp = &(*pp)->next_key) if (*pp == e) { *pp = e->next_key; return; }
}
static void insert(table *t, entry *e) {
    uint32_t h = hash(e->id);
    e->next_id = t->by_id[h]; t->by_id[h] = e;
    link_key(t, e);
    if (t->norder == t->caporder) {
        t->caporder = t->caporder ? t->caporder * 2 : 64;
        t->order = realloc(t->order, t->caporder * sizeof *t->order);
    }
    t->order[t->norder++] = e;
    t->count++;
}
static void free_entry(entry *e) {
    for (size_t i = 0; i < e->nmembers; i++) { free(e->members[i]); free(e->member_json[i]); }
    free(e->members); free(e->member_json); free(e->id); free(e->key); free(e->body); free(e->created); free(e->modified); free(e);
}
static void erase(table *t, entry *e) {
    for (entry **pp = &t->by_id[hash(e->id)]; *pp; pp = &(*pp)->next_id) if (*pp == e) { *pp = e->next_id; break; }
    unlink_key(t, e);
    for (size_t i = 0; i < t->norder; i++) if (t->order[i] == e) {
        memmove(&t->order[i], &t->order[i + 1], (t->norder - i - 1) * sizeof *t->order);
        t->norder--;
        break;
    }
    t->count--;
    free_entry(e);
}

static char *now_text(void) {
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm; gmtime_r(&ts.tv_sec, &tm);
    char *s = malloc(96);
    snprintf(s, 96, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    return s;
}
static char *new_id(void) {
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != sizeof r) for (int i = 0; i < 16; i++) r[i] = (unsigned char)rand();
    r[6] = (r[6] & 0x0f) | 0x40; r[8] = (r[8] & 0x3f) | 0x80;
    char *s = malloc(37);
    snprintf(s, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
             r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
    return s;
}

static int fail(scimc_instance *in, scimc_call *call, int status, const char *type, const char *detail) {
    in->host->fail(call, type, detail, strlen(detail));
    return status;
}

/* Appends a member (takes ownership of id; copies the element's JSON). */
static void add_member(entry *e, char *id, const char *json, size_t len) {
    if (e->nmembers == e->capmembers) {
        e->capmembers = e->capmembers ? e->capmembers * 2 : 8;
        e->members = realloc(e->members, e->capmembers * sizeof(char *));
        e->member_json = realloc(e->member_json, e->capmembers * sizeof(char *));
    }
    char *copy = malloc(len + 1);
    memcpy(copy, json, len);
    copy[len] = 0;
    e->members[e->nmembers] = id;
    e->member_json[e->nmembers] = copy;
    e->nmembers++;
}

/* Copies the members of `resource` except id, meta and (for groups) members into a new body
 * string. Collects member ids when `members` is given. */
static char *strip(const char *p, size_t n, int is_group, entry *members_into) {
    const char *e = p + n;
    sbuf out = {0};
    p = ws(p, e);
    if (p >= e || *p != '{') return NULL;
    p++;
    for (;;) {
        p = ws(p, e);
        if (p >= e) { free(out.p); return NULL; }
        if (*p == '}') break;
        if (*p == ',') { p++; continue; }
        const char *k = p, *ke = skip_string(p, e);
        if (!ke) { free(out.p); return NULL; }
        const char *v = ws(ke, e);
        if (v >= e || *v != ':') { free(out.p); return NULL; }
        const char *ve = skip_value(v + 1, e);
        if (!ve) { free(out.p); return NULL; }
        size_t klen = (size_t)(ke - k);
        int drop = (klen == 4 && strncasecmp(k, "\"id\"", 4) == 0) || (klen == 6 && strncasecmp(k, "\"meta\"", 6) == 0);
        if (is_group && klen == 9 && strncasecmp(k, "\"members\"", 9) == 0) {
            drop = 1;
            if (members_into) {
                const char *q = ws(v + 1, e);
                if (q < ve && *q == '[') {
                    q++;
                    for (;;) {
                        q = ws(q, ve);
                        if (q >= ve || *q == ']') break;
                        if (*q == ',') { q++; continue; }
                        const char *oe = skip_value(q, ve);
                        if (!oe) break;
                        jmember m;
                        if (find_member(q, oe, "value", &m)) {
                            char *id = string_contents(m.value, m.value_end, 0);
                            if (id) add_member(members_into, id, q, (size_t)(oe - q));
                        }
                        q = oe;
                    }
                }
            }
        }
        if (!drop) {
            if (out.len) sb_put(&out, ",", 1);
            sb_put(&out, k, (size_t)(ve - k));
        }
        p = ve;
    }
    if (!out.p) sb_put(&out, "", 0);
    return out.p;
}

/* `members`: a group's members go in (a user has none). */
static void render(sbuf *b, entry *e, int members) {
    sb_str(b, "{\"id\":\"");
    sb_str(b, e->id);
    sb_str(b, "\"");
    if (e->body[0]) { sb_put(b, ",", 1); sb_str(b, e->body); }
    if (members) {
        sb_str(b, ",\"members\":[");
        for (size_t i = 0; i < e->nmembers; i++) {
            if (i) sb_put(b, ",", 1);
            sb_str(b, e->member_json[i]);
        }
        sb_str(b, "]");
    }
    sb_str(b, ",\"meta\":{\"created\":\""); sb_str(b, e->created);
    char version[32];
    snprintf(version, sizeof version, "%llu", e->version);
    sb_str(b, "\",\"lastModified\":\""); sb_str(b, e->modified);
    sb_str(b, "\",\"version\":\""); sb_str(b, version); sb_str(b, "\"}}");
}

static int emit_entry(scimc_instance *in, scimc_call *call, entry *e, int is_group) {
    sbuf b = {0};
    render(&b, e, is_group);
    in->host->emit(call, b.p, b.len);
    free(b.p);
    return SCIMC_OK;
}

static const char *key_name(int is_group) { return is_group ? "displayName" : "userName"; }

static int do_create(scimc_instance *in, scimc_call *call, scimc_buf res, int is_group) {
    table *t = is_group ? &in->s->groups : &in->s->users;
    jmember m;
    if (!find_member(res.ptr, res.ptr + res.len, key_name(is_group), &m) || *m.value != '"')
        return fail(in, call, SCIMC_BAD_REQUEST, "invalidValue", is_group ? "displayName is required" : "userName is required");
    entry *e = calloc(1, sizeof *e);
    e->key = string_contents(m.value, m.value_end, 1);
    e->body = strip(res.ptr, res.len, is_group, is_group ? e : NULL);
    if (!e->body) { free_entry(e); return fail(in, call, SCIMC_BAD_REQUEST, "invalidSyntax", "resource is not a JSON object"); }
    e->id = new_id();
    e->created = now_text();
    e->modified = strdup(e->created);
    pthread_rwlock_wrlock(&in->s->lock);
    if (!is_group && lookup_key(t, e->key)) {
        pthread_rwlock_unlock(&in->s->lock);
        free_entry(e);
        return fail(in, call, SCIMC_CONFLICT, "uniqueness", "userName is already taken");
    }
    e->version = ++in->s->versions;
    insert(t, e);
    int rc = emit_entry(in, call, e, is_group);
    pthread_rwlock_unlock(&in->s->lock);
    return rc;
}

static int do_get(scimc_instance *in, scimc_call *call, scimc_buf id, int is_group) {
    pthread_rwlock_rdlock(&in->s->lock);
    entry *e = lookup_id(is_group ? &in->s->groups : &in->s->users, id.ptr, id.len);
    int rc = e ? emit_entry(in, call, e, is_group) : SCIMC_NOT_FOUND;
    pthread_rwlock_unlock(&in->s->lock);
    return rc;
}

/* meta.version of a resource as get emitted it, or NULL. */
static char *version_of(scimc_buf resource) {
    jmember meta, v;
    if (!find_member(resource.ptr, resource.ptr + resource.len, "meta", &meta)) return NULL;
    if (!find_member(meta.value, meta.value_end, "version", &v)) return NULL;
    return string_contents(v.value, v.value_end, 0);
}

/* replace, and replace_if when `expected` is given: only if the entry's version is still the one
 * `expected` carries. */
static int do_replace(scimc_instance *in, scimc_call *call, scimc_buf id, scimc_buf res, const scimc_buf *expected, int is_group) {
    table *t = is_group ? &in->s->groups : &in->s->users;
    char *want = NULL;
    if (expected && !(want = version_of(*expected)))
        return fail(in, call, SCIMC_BAD_REQUEST, NULL, "replace_if: the expected resource has no meta.version");
    jmember m;
    if (!find_member(res.ptr, res.ptr + res.len, key_name(is_group), &m) || *m.value != '"') {
        free(want);
        return fail(in, call, SCIMC_BAD_REQUEST, "invalidValue", is_group ? "displayName is required" : "userName is required");
    }
    entry scratch = {0};
    char *body = strip(res.ptr, res.len, is_group, is_group ? &scratch : NULL);
    if (!body) { free(want); return fail(in, call, SCIMC_BAD_REQUEST, "invalidSyntax", "resource is not a JSON object"); }
    char *key = string_contents(m.value, m.value_end, 1);
    pthread_rwlock_wrlock(&in->s->lock);
    entry *e = lookup_id(t, id.ptr, id.len);
    int rc;
    char current[32];
    if (e) snprintf(current, sizeof current, "%llu", e->version);
    if (!e) {
        rc = SCIMC_NOT_FOUND;
    } else if (want && strcmp(want, current) != 0) {
        rc = fail(in, call, SCIMC_PRECONDITION, NULL, "the resource changed since it was read");
    } else if (!is_group && strcmp(key, e->key) != 0 && lookup_key(t, key)) {
        rc = fail(in, call, SCIMC_CONFLICT, "uniqueness", "userName is already taken");
    } else {
        unlink_key(t, e);
        free(e->key); e->key = key; key = NULL;
        link_key(t, e);
        free(e->body); e->body = body; body = NULL;
        if (is_group) {
            for (size_t i = 0; i < e->nmembers; i++) { free(e->members[i]); free(e->member_json[i]); }
            free(e->members); free(e->member_json);
            e->members = scratch.members; e->member_json = scratch.member_json;
            e->nmembers = scratch.nmembers; e->capmembers = scratch.capmembers;
            scratch.members = NULL; scratch.member_json = NULL; scratch.nmembers = 0;
        }
        free(e->modified); e->modified = now_text();
        e->version = ++in->s->versions;
        rc = emit_entry(in, call, e, is_group);
    }
    pthread_rwlock_unlock(&in->s->lock);
    for (size_t i = 0; i < scratch.nmembers; i++) { free(scratch.members[i]); free(scratch.member_json[i]); }
    free(scratch.members); free(scratch.member_json); free(body); free(key); free(want);
    return rc;
}

static int do_remove(scimc_instance *in, scimc_call *call, scimc_buf id, int is_group) {
    (void)call;
    table *t = is_group ? &in->s->groups : &in->s->users;
    pthread_rwlock_wrlock(&in->s->lock);
    entry *e = lookup_id(t, id.ptr, id.len);
    if (e) {
        if (!is_group) {  /* a deleted user leaves every group */
            for (size_t g = 0; g < in->s->groups.norder; g++) {
                entry *ge = in->s->groups.order[g];
                for (size_t i = 0; i < ge->nmembers; i++) if (strcmp(ge->members[i], e->id) == 0) {
                    free(ge->members[i]); free(ge->member_json[i]);
                    ge->nmembers--;
                    memmove(&ge->members[i], &ge->members[i + 1], (ge->nmembers - i) * sizeof(char *));
                    memmove(&ge->member_json[i], &ge->member_json[i + 1], (ge->nmembers - i) * sizeof(char *));
                    break;
                }
            }
        }
        erase(t, e);
    }
    pthread_rwlock_unlock(&in->s->lock);
    return e ? SCIMC_OK : SCIMC_NOT_FOUND;
}

static int do_search(scimc_instance *in, scimc_call *call, scimc_buf query, int is_group) {
    table *t = is_group ? &in->s->groups : &in->s->users;
    const char *qe = query.ptr + query.len;
    char *wanted = NULL;
    int by_id = 0;
    jmember f, op, path, value;
    /* id eq "x", and userName eq "x" (users), are answered from the indexes; anything else
     * goes to the host. */
    if (find_member(query.ptr, qe, "filter", &f) && find_member(f.value, f.value_end, "op", &op) &&
        find_member(f.value, f.value_end, "path", &path) && find_member(f.value, f.value_end, "value", &value) &&
        op.value_end - op.value == 4 && strncmp(op.value, "\"eq\"", 4) == 0 && *value.value == '"') {
        by_id = path.value_end - path.value == 4 && strncmp(path.value, "\"id\"", 4) == 0;
        if (by_id || (!is_group && path.value_end - path.value == 10 && strncasecmp(path.value, "\"userName\"", 10) == 0))
            wanted = string_contents(value.value, value.value_end, !by_id);
    }
    /* A client that leaves the members out: they are not rendered (a group of 100,000). */
    int members = is_group && !(find_member(query.ptr, qe, "withoutMembers", &value) && *value.value == 't');
    sbuf b = {0};
    sb_str(&b, "{\"Resources\":[");
    pthread_rwlock_rdlock(&in->s->lock);
    if (wanted) {
        entry *e = by_id ? lookup_id(t, wanted, strlen(wanted)) : lookup_key(t, wanted);
        if (e) render(&b, e, members);
        sb_str(&b, "],\"filtered\":true,\"sorted\":true,\"paged\":false}");
    } else if (!find_member(query.ptr, qe, "filter", &f) && !find_member(query.ptr, qe, "sortBy", &op)) {
        /* No filter, no sort: the page alone, wherever it starts (an import reads them all). */
        size_t start = 0, count = t->norder;
        if (find_member(query.ptr, qe, "startIndex", &value)) { long n = strtol(value.value, NULL, 10); start = n > 1 ? (size_t)(n - 1) : 0; }
        if (find_member(query.ptr, qe, "count", &value)) { long n = strtol(value.value, NULL, 10); count = n > 0 ? (size_t)n : 0; }
        if (start > t->norder) start = t->norder;
        if (count > t->norder - start) count = t->norder - start;
        for (size_t i = start; i < start + count; i++) {
            if (i > start) sb_put(&b, ",", 1);
            render(&b, t->order[i], members);
        }
        char tail[96];
        snprintf(tail, sizeof tail, "],\"filtered\":true,\"sorted\":true,\"paged\":true,\"totalResults\":%zu}", t->norder);
        sb_str(&b, tail);
    } else {
        for (size_t i = 0; i < t->norder; i++) {
            if (i) sb_put(&b, ",", 1);
            render(&b, t->order[i], members);
        }
        sb_str(&b, "],\"filtered\":false,\"sorted\":false,\"paged\":false}");
    }
    pthread_rwlock_unlock(&in->s->lock);
    in->host->emit(call, b.p, b.len);
    free(b.p);
    free(wanted);
    return SCIMC_OK;
}

static int change_members(scimc_instance *in, scimc_call *call, scimc_buf gid, scimc_buf members, int add) {
    entry scratch = {0};
    /* Reuse strip() to collect the ids: wrap the array as {"members": [...]}. */
    sbuf wrap = {0};
    sb_str(&wrap, "{\"members\":");
    sb_put(&wrap, members.ptr, members.len);
    sb_str(&wrap, "}");
    char *ignored = strip(wrap.p, wrap.len, 1, &scratch);
    free(wrap.p);
    if (!ignored) return fail(in, call, SCIMC_BAD_REQUEST, "invalidValue", "members must be a JSON array");
    free(ignored);
    pthread_rwlock_wrlock(&in->s->lock);
    entry *g = lookup_id(&in->s->groups, gid.ptr, gid.len);
    if (g) {
        for (size_t k = 0; k < scratch.nmembers; k++) {
            size_t i = 0;
            while (i < g->nmembers && strcmp(g->members[i], scratch.members[k]) != 0) i++;
            if (add && i == g->nmembers) {
                add_member(g, strdup(scratch.members[k]), scratch.member_json[k], strlen(scratch.member_json[k]));
            } else if (!add && i < g->nmembers) {
                free(g->members[i]); free(g->member_json[i]);
                g->nmembers--;
                memmove(&g->members[i], &g->members[i + 1], (g->nmembers - i) * sizeof(char *));
                memmove(&g->member_json[i], &g->member_json[i + 1], (g->nmembers - i) * sizeof(char *));
            }
        }
        free(g->modified);
        g->modified = now_text();
        g->version = ++in->s->versions;
    }
    pthread_rwlock_unlock(&in->s->lock);
    for (size_t i = 0; i < scratch.nmembers; i++) { free(scratch.members[i]); free(scratch.member_json[i]); }
    free(scratch.members); free(scratch.member_json);
    return g ? SCIMC_OK : SCIMC_NOT_FOUND;
}

/* ---- Entry points ----------------------------------------------------------------------- */
static int user_create(scimc_instance *i, scimc_call *c, scimc_buf r) { return do_create(i, c, r, 0); }
static int user_get(scimc_instance *i, scimc_call *c, scimc_buf id) { return do_get(i, c, id, 0); }
static int user_replace(scimc_instance *i, scimc_call *c, scimc_buf id, scimc_buf r) { return do_replace(i, c, id, r, NULL, 0); }
static int user_replace_if(scimc_instance *i, scimc_call *c, scimc_buf id, scimc_buf r, scimc_buf x) { return do_replace(i, c, id, r, &x, 0); }
static int user_remove(scimc_instance *i, scimc_call *c, scimc_buf id) { return do_remove(i, c, id, 0); }
static int user_search(scimc_instance *i, scimc_call *c, scimc_buf q) { return do_search(i, c, q, 0); }
static int group_create(scimc_instance *i, scimc_call *c, scimc_buf r) { return do_create(i, c, r, 1); }
static int group_get(scimc_instance *i, scimc_call *c, scimc_buf id) { return do_get(i, c, id, 1); }
static int group_replace(scimc_instance *i, scimc_call *c, scimc_buf id, scimc_buf r) { return do_replace(i, c, id, r, NULL, 1); }
static int group_replace_if(scimc_instance *i, scimc_call *c, scimc_buf id, scimc_buf r, scimc_buf x) { return do_replace(i, c, id, r, &x, 1); }
static int group_remove(scimc_instance *i, scimc_call *c, scimc_buf id) { return do_remove(i, c, id, 1); }
static int group_search(scimc_instance *i, scimc_call *c, scimc_buf q) { return do_search(i, c, q, 1); }
static int add_members(scimc_instance *i, scimc_call *c, scimc_buf g, scimc_buf m) { return change_members(i, c, g, m, 1); }
static int remove_members(scimc_instance *i, scimc_call *c, scimc_buf g, scimc_buf m) { return change_members(i, c, g, m, 0); }

static void *create_store(void *context) {
    (void)context;
    store *s = calloc(1, sizeof *s);
    if (s) pthread_rwlock_init(&s->lock, NULL);
    return s;
}

static void free_table(table *t) {
    for (size_t i = 0; i < t->norder; i++) free_entry(t->order[i]);
    free(t->order);
}

static void destroy_store(void *value) {
    store *s = value;
    if (!s) return;
    free_table(&s->users);
    free_table(&s->groups);
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

static int mem_open(const scimc_host *host, scimc_call *call, const char *app, scimc_buf settings, scimc_instance **out) {
    (void)settings;
    scimc_instance *in = calloc(1, sizeof *in);
    if (!in) return SCIMC_INTERNAL;
    in->host = host;
    snprintf(in->key, sizeof in->key, "memory/%s", app);
    in->s = host->shared_acquire(host, in->key, create_store, NULL);
    if (!in->s) {
        free(in);
        static const char msg[] = "out of memory";
        host->fail(call, NULL, msg, sizeof msg - 1);
        return SCIMC_INTERNAL;
    }
    *out = in;
    return SCIMC_OK;
}

static void mem_close(scimc_instance *in) {
    in->host->shared_release(in->host, in->key, destroy_store);
    free(in);
}

static int mem_test(scimc_instance *in, scimc_call *call) {
    char msg[128];
    pthread_rwlock_rdlock(&in->s->lock);
    int n = snprintf(msg, sizeof msg, "{\"message\":\"in-memory store: %zu users, %zu groups\"}", in->s->users.count, in->s->groups.count);
    pthread_rwlock_unlock(&in->s->lock);
    in->host->emit(call, msg, (size_t)n);
    return SCIMC_OK;
}

static int mem_describe(scimc_instance *in, scimc_call *call) {
    static const char d[] = "{\"users\":{\"sort\":false,\"passwordWritable\":true,\"activeWritable\":true,"
                            "\"filterAttributes\":[\"userName\"],\"filterOperators\":[\"eq\"]},"
                            "\"groups\":{\"sort\":false}}";
    in->host->emit(call, d, sizeof d - 1);
    return SCIMC_OK;
}

static const scimc_resource_ops user_ops = {
    .struct_size = sizeof(scimc_resource_ops),
    .create = user_create, .get = user_get, .replace = user_replace, .remove = user_remove, .search = user_search,
    .replace_if = user_replace_if,
};
static const scimc_resource_ops group_ops = {
    .struct_size = sizeof(scimc_resource_ops),
    .create = group_create, .get = group_get, .replace = group_replace, .remove = group_remove, .search = group_search,
    .replace_if = group_replace_if,
};

#ifndef MEMORY_CONNECTOR_VERSION
#define MEMORY_CONNECTOR_VERSION "1.0.0"
#endif

static const scimc_connector descriptor = {
    .struct_size = sizeof(scimc_connector),
    .abi_major = SCIMC_ABI_MAJOR,
    .abi_minor = SCIMC_ABI_MINOR,
    .name = "memory",
    .version = MEMORY_CONNECTOR_VERSION,
    .flags = SCIMC_FLAG_CONCURRENT | SCIMC_FLAG_UNLOADABLE | SCIMC_FLAG_NONBLOCKING,
    .toolchain = NULL,
    .open = mem_open,
    .close = mem_close,
    .test = mem_test,
    .describe = mem_describe,
    .users = &user_ops,
    .groups = &group_ops,
    .add_members = add_members,
    .remove_members = remove_members,
};

__attribute__((visibility("default"))) const scimc_connector *scimc_connector_entry(void) { return &descriptor; }
