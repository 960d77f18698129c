/* The direct baseline for the mysql benchmark: the same parameterised INSERT the connector
 * issues, over libmariadb, from N threads (one connection each), for a fixed time. */
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *host, *user, *pw, *db; static unsigned port; static double seconds;
static long total; static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static void *worker(void *arg) {
    long id = (long)arg, n = 0;
    MYSQL *c = mysql_init(NULL);
    if (!mysql_real_connect(c, host, user, pw, db, port, NULL, 0)) { fprintf(stderr, "%s\n", mysql_error(c)); exit(1); }
    const char *sql = "INSERT INTO `users` (`id`, `userName`, `givenName`, `familyName`, `active`, `created`, `lastModified`) VALUES (UUID(), ?, ?, ?, ?, NOW(3), NOW(3))";
    MYSQL_STMT *st = mysql_stmt_init(c);
    if (mysql_stmt_prepare(st, sql, strlen(sql))) { fprintf(stderr, "%s\n", mysql_stmt_error(st)); exit(1); }
    char name[128]; unsigned long len; const char *given = "Bench", *family = "User", *active = "1";
    unsigned long glen = 5, flen = 4, alen = 1;
    MYSQL_BIND b[4]; memset(b, 0, sizeof b);
    b[0].buffer_type = MYSQL_TYPE_STRING; b[0].buffer = name; b[0].length = &len;
    b[1].buffer_type = MYSQL_TYPE_STRING; b[1].buffer = (void *)given; b[1].length = &glen;
    b[2].buffer_type = MYSQL_TYPE_STRING; b[2].buffer = (void *)family; b[2].length = &flen;
    b[3].buffer_type = MYSQL_TYPE_STRING; b[3].buffer = (void *)active; b[3].length = &alen;
    double end = now() + seconds;
    while (now() < end) {
        len = snprintf(name, sizeof name, "direct-%d-%ld-%ld@example.com", getpid(), id, n);
        mysql_stmt_bind_param(st, b);
        if (mysql_stmt_execute(st)) { fprintf(stderr, "%s\n", mysql_stmt_error(st)); exit(1); }
        n++;
    }
    mysql_stmt_close(st); mysql_close(c);
    pthread_mutex_lock(&lock); total += n; pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 9) { fprintf(stderr, "usage: host port user password db threads seconds unused\n"); return 2; }
    host = argv[1]; port = atoi(argv[2]); user = argv[3]; pw = argv[4]; db = argv[5]; int threads = atoi(argv[6]); seconds = atof(argv[7]);
    pthread_t t[256];
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    printf("%.1f\n", total / seconds);
    return 0;
}
