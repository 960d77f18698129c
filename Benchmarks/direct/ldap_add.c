/* The direct baseline for the ldap benchmark: the same adds the connector issues (an
 * inetOrgPerson under usersDN), over libldap, from N threads (one bound connection each). */
#define LDAP_DEPRECATED 0
#include <ldap.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *url, *binddn, *pw, *base; static double seconds;
static long total; static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static void *worker(void *arg) {
    long id = (long)arg, n = 0;
    LDAP *ld; int v = 3;
    if (ldap_initialize(&ld, url)) exit(1);
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v);
    struct berval cred = { strlen(pw), (char *)pw };
    if (ldap_sasl_bind_s(ld, binddn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL)) { fprintf(stderr, "bind failed\n"); exit(1); }
    char uid[128], dn[512];
    char *oc[] = { "top", "inetOrgPerson", NULL }, *uids[] = { uid, NULL }, *cn[] = { "Bench User", NULL }, *sn[] = { "User", NULL }, *gn[] = { "Bench", NULL };
    LDAPMod m0 = { LDAP_MOD_ADD, "objectClass", { oc } }, m1 = { LDAP_MOD_ADD, "uid", { uids } }, m2 = { LDAP_MOD_ADD, "cn", { cn } },
            m3 = { LDAP_MOD_ADD, "sn", { sn } }, m4 = { LDAP_MOD_ADD, "givenName", { gn } };
    LDAPMod *mods[] = { &m0, &m1, &m2, &m3, &m4, NULL };
    double end = now() + seconds;
    while (now() < end) {
        snprintf(uid, sizeof uid, "direct-%d-%ld-%ld", getpid(), id, n);
        snprintf(dn, sizeof dn, "uid=%s,%s", uid, base);
        int rc = ldap_add_ext_s(ld, dn, mods, NULL, NULL);
        if (rc) { fprintf(stderr, "%s\n", ldap_err2string(rc)); exit(1); }
        n++;
    }
    ldap_unbind_ext_s(ld, NULL, NULL);
    pthread_mutex_lock(&lock); total += n; pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: url binddn password usersDN threads seconds\n"); return 2; }
    url = argv[1]; binddn = argv[2]; pw = argv[3]; base = argv[4]; int threads = atoi(argv[5]); seconds = atof(argv[6]);
    pthread_t t[256];
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    printf("%.1f\n", total / seconds);
    return 0;
}
