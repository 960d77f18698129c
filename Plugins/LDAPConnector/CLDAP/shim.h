/* Small wrappers over libldap for what is awkward from Swift (unions, berval plumbing). */
#define LDAP_DEPRECATED 0
#include <ldap.h>
#include <lber.h>
#include <stdlib.h>
#include <string.h>

static inline int scim_ldap_bind(LDAP *ld, const char *dn, const char *password) {
    struct berval cred;
    cred.bv_val = (char *)password;
    cred.bv_len = password ? strlen(password) : 0;
    return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/* RFC 3062 Password Modify: the directory hashes with its own policy. */
static inline int scim_ldap_passwd(LDAP *ld, const char *dn, const char *password) {
    struct berval user, newpw, out;
    user.bv_val = (char *)dn; user.bv_len = strlen(dn);
    newpw.bv_val = (char *)password; newpw.bv_len = strlen(password);
    out.bv_val = NULL; out.bv_len = 0;
    int rc = ldap_passwd_s(ld, &user, NULL, &newpw, &out, NULL, NULL);
    if (out.bv_val) ber_memfree(out.bv_val);
    return rc;
}

/* The server's diagnostic message for the last operation, or NULL; free with ldap_memfree. */
static inline char *scim_ldap_diagnostic(LDAP *ld) {
    char *msg = NULL;
    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg);
    return msg;
}

/* The Assertion control (RFC 4528) with `assertion` as its filter, or NULL when `assertion` is
 * NULL; free with ldap_control_free. The operation it goes with fails with
 * LDAP_ASSERTION_FAILED, writing nothing, unless the entry matches the filter. */
static inline int scim_ldap_assertion(LDAP *ld, const char *assertion, LDAPControl **out) {
    *out = NULL;
    if (!assertion) return LDAP_SUCCESS;
    return ldap_create_assertion_control(ld, (char *)assertion, 1, out);
}

static inline int scim_ldap_modify(LDAP *ld, const char *dn, LDAPMod **mods, const char *assertion) {
    LDAPControl *ctrl;
    int rc = scim_ldap_assertion(ld, assertion, &ctrl);
    if (rc != LDAP_SUCCESS) return rc;
    LDAPControl *ctrls[2] = {ctrl, NULL};
    rc = ldap_modify_ext_s(ld, dn, mods, ctrl ? ctrls : NULL, NULL);
    if (ctrl) ldap_control_free(ctrl);
    return rc;
}

static inline int scim_ldap_rename(LDAP *ld, const char *dn, const char *newrdn, const char *superior, const char *assertion) {
    LDAPControl *ctrl;
    int rc = scim_ldap_assertion(ld, assertion, &ctrl);
    if (rc != LDAP_SUCCESS) return rc;
    LDAPControl *ctrls[2] = {ctrl, NULL};
    rc = ldap_rename_s(ld, dn, newrdn, superior, 1, ctrl ? ctrls : NULL, NULL);
    if (ctrl) ldap_control_free(ctrl);
    return rc;
}

/* One modification; `values` is a NULL-terminated array of malloc'd strings (or NULL). */
static inline LDAPMod *scim_ldap_mod(int op, const char *type, char **values) {
    LDAPMod *m = calloc(1, sizeof *m);
    m->mod_op = op;
    m->mod_type = strdup(type);
    m->mod_values = values;
    return m;
}

static inline void scim_ldap_mods_free(LDAPMod **mods) {
    if (!mods) return;
    for (LDAPMod **m = mods; *m; m++) {
        if ((*m)->mod_values) {
            for (char **v = (*m)->mod_values; *v; v++) free(*v);
            free((*m)->mod_values);
        }
        free((*m)->mod_type);
        free(*m);
    }
    free(mods);
}

/* One page of a search with the Simple Paged Results control (RFC 2696). `cookie` carries the
 * server's cookie between pages; it comes back empty after the last page. */
static inline int scim_ldap_search_page(LDAP *ld, const char *base, int scope, const char *filter, char **attrs,
                                        int pagesize, struct berval *cookie, int timeout_s, LDAPMessage **res) {
    LDAPControl *page = NULL;
    int rc;
    *res = NULL;
    if (pagesize > 0) {
        rc = ldap_create_page_control(ld, pagesize, (cookie && cookie->bv_len) ? cookie : NULL, 0, &page);
        if (rc != LDAP_SUCCESS) return rc;
    }
    LDAPControl *ctrls[2] = { page, NULL };
    struct timeval tv = { timeout_s, 0 };
    rc = ldap_search_ext_s(ld, base, scope, filter, attrs, 0, page ? ctrls : NULL, NULL, timeout_s > 0 ? &tv : NULL, 0, res);
    if (page) ldap_control_free(page);
    if (cookie) {
        if (cookie->bv_val) ber_memfree(cookie->bv_val);
        cookie->bv_val = NULL;
        cookie->bv_len = 0;
    }
    if (rc != LDAP_SUCCESS || pagesize <= 0 || !cookie) return rc;
    LDAPControl **rctrls = NULL;
    int err = 0;
    if (ldap_parse_result(ld, *res, &err, NULL, NULL, NULL, &rctrls, 0) == LDAP_SUCCESS && rctrls) {
        LDAPControl *pc = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL);
        if (pc) {
            ber_int_t count = 0;
            struct berval ck = { 0, NULL };
            if (ldap_parse_pageresponse_control(ld, pc, &count, &ck) == LDAP_SUCCESS && ck.bv_len > 0) {
                *cookie = ck;
            } else if (ck.bv_val) {
                ber_memfree(ck.bv_val);
            }
        }
        ldap_controls_free(rctrls);
    }
    return rc;
}
