/* The direct baseline for the mysql benchmark: the statement the connector issues for one new
 * user (createSchema tables), over libmariadb, from N threads (one connection each, autocommit),
 * for a fixed time. Like the connector, each row gets a time-ordered (version 7) UUID and its
 * creation time from the client, the unset columns are bound as NULL, and the stored row is
 * read back through RETURNING.
 *
 * usage: host port user password db threads seconds mode
 *   mode "connector": that statement (the benchmark's baseline);
 *   mode "server-ids": the older, lighter baseline, kept for comparison: 7 columns, id and times
 *   from the server (UUID(), NOW(3)), nothing read back. */
#include <mysql.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char *host, *user, *pw, *db; static unsigned port; static double seconds; static int connector_mode;
static long total; static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *CONNECTOR_SQL =
    "INSERT INTO `users` (`id`, `userName`, `externalId`, `givenName`, `familyName`, `displayName`, `email`, `title`, "
    "`active`, `attributes`, `lastModified`, `created`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `id`, "
    "`userName`, `externalId`, `givenName`, `familyName`, `displayName`, `email`, `title`, `active`, `attributes`, "
    "`created`, `lastModified`";
static const char *SERVER_IDS_SQL =
    "INSERT INTO `users` (`id`, `userName`, `givenName`, `familyName`, `active`, `created`, `lastModified`) "
    "VALUES (UUID(), ?, ?, ?, ?, NOW(3), NOW(3))";

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

/* xorshift128+, seeded from the kernel: the random bits of the ids, at no cost here. */
static uint64_t next(uint64_t s[2]) {
    uint64_t x = s[0], y = s[1];
    s[0] = y; x ^= x << 23; s[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
    return s[1] + y;
}

/* A version 7 UUID, as the connector makes them: 48 bits of Unix milliseconds, 74 random. */
static void uuid7(uint64_t s[2], char out[37]) {
    unsigned char b[16]; struct timespec t; clock_gettime(CLOCK_REALTIME, &t);
    uint64_t ms = (uint64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000, a = next(s), c = next(s);
    for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)a; b[7] = (unsigned char)(a >> 8); memcpy(b + 8, &c, 8);
    b[6] = (b[6] & 0x0f) | 0x70; b[8] = (b[8] & 0x3f) | 0x80;
    static const char *hex = "0123456789abcdef"; int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4]; out[o++] = hex[b[i] & 15];
    }
    out[o] = 0;
}

static unsigned long sql_now(char out[32]) {
    struct timespec t; clock_gettime(CLOCK_REALTIME, &t); struct tm tm; gmtime_r(&t.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
    return n + snprintf(out + n, 32 - n, ".%03ld", t.tv_nsec / 1000000);
}

static void *worker(void *arg) {
    long id = (long)arg, n = 0;
    MYSQL *c = mysql_init(NULL);
    if (!mysql_real_connect(c, host, user, pw, db, port, NULL, 0)) { fprintf(stderr, "%s\n", mysql_error(c)); exit(1); }
    const char *sql = connector_mode ? CONNECTOR_SQL : SERVER_IDS_SQL;
    MYSQL_STMT *st = mysql_stmt_init(c);
    if (mysql_stmt_prepare(st, sql, strlen(sql))) { fprintf(stderr, "%s\n", mysql_stmt_error(st)); exit(1); }
    uint64_t seed[2]; if (getrandom(seed, sizeof seed, 0) != sizeof seed) { perror("getrandom"); exit(1); }
    char uuid[37], name[128], stamp[32]; unsigned long ulen = 36, len, slen;
    const char *given = "Bench", *family = "User", *active = "1";
    unsigned long glen = 5, flen = 4, alen = 1;
    MYSQL_BIND b[12]; memset(b, 0, sizeof b);
    int nparams = 0;
#define PARAM(buf, lenp) do { b[nparams].buffer_type = MYSQL_TYPE_STRING; b[nparams].buffer = (void *)(buf); b[nparams].length = (lenp); nparams++; } while (0)
#define NULLPARAM() do { b[nparams].buffer_type = MYSQL_TYPE_NULL; nparams++; } while (0)
    if (connector_mode) {
        PARAM(uuid, &ulen); PARAM(name, &len); NULLPARAM(); PARAM(given, &glen); PARAM(family, &flen);
        NULLPARAM(); NULLPARAM(); NULLPARAM(); PARAM(active, &alen); NULLPARAM(); PARAM(stamp, &slen); PARAM(stamp, &slen);
    } else {
        PARAM(name, &len); PARAM(given, &glen); PARAM(family, &flen); PARAM(active, &alen);
    }
    /* The row RETURNING sends back, read as the connector reads it: every column as text. */
    char cells[12][512]; unsigned long cell_len[12]; my_bool cell_null[12];
    MYSQL_BIND r[12]; memset(r, 0, sizeof r);
    for (int i = 0; i < 12; i++) {
        r[i].buffer_type = MYSQL_TYPE_STRING; r[i].buffer = cells[i]; r[i].buffer_length = sizeof cells[i];
        r[i].length = &cell_len[i]; r[i].is_null = &cell_null[i];
    }
    double end = now() + seconds;
    while (now() < end) {
        len = snprintf(name, sizeof name, "direct-%d-%ld-%ld@example.com", getpid(), id, n);
        if (connector_mode) { uuid7(seed, uuid); slen = sql_now(stamp); }
        mysql_stmt_bind_param(st, b);
        if (mysql_stmt_execute(st)) { fprintf(stderr, "%s\n", mysql_stmt_error(st)); exit(1); }
        if (connector_mode) {
            /* MariaDB describes RETURNING's columns at execution, not at prepare. */
            if (mysql_stmt_field_count(st) != 12 || mysql_stmt_bind_result(st, r)) { fprintf(stderr, "RETURNING: %s\n", mysql_stmt_error(st)); exit(1); }
            int rows = 0, f;
            while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) rows++;
            if (f != MYSQL_NO_DATA || rows != 1) { fprintf(stderr, "RETURNING gave %d rows: %s\n", rows, mysql_stmt_error(st)); exit(1); }
            mysql_stmt_free_result(st);
        }
        n++;
    }
    mysql_stmt_close(st); mysql_close(c);
    pthread_mutex_lock(&lock); total += n; pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 9 || (strcmp(argv[8], "connector") && strcmp(argv[8], "server-ids"))) {
        fprintf(stderr, "usage: host port user password db threads seconds connector|server-ids\n"); return 2;
    }
    host = argv[1]; port = atoi(argv[2]); user = argv[3]; pw = argv[4]; db = argv[5]; int threads = atoi(argv[6]); seconds = atof(argv[7]);
    connector_mode = !strcmp(argv[8], "connector");
    if (threads < 1 || threads > 256) { fprintf(stderr, "threads: 1 to 256\n"); return 2; }
    pthread_t t[256];
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    printf("%.1f\n", total / seconds);
    return 0;
}
