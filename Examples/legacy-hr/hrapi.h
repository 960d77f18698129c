/*
 * hrapi.h — the employee API of a (fictional) legacy HR system, version 2.3.
 *
 * It knows nothing of SCIM or of provisioning-agent: it is the kind of vendor library an
 * on-premises application ships, and what the `native` connector binds by a manifest
 * (Examples/legacy-hr/hrapi.yaml) with no glue code.
 *
 * Every function but hr_open and hr_last_error returns an HR_ status code. Strings are
 * NUL-terminated UTF-8; output buffers are filled with a NUL-terminated string or, if too
 * small, left untouched with HR_ETOOSMALL.
 */
#ifndef HRAPI_H
#define HRAPI_H

#include <stddef.h>
#include <stdint.h>

#define HR_OK          0
#define HR_EINVAL     -1   /* an argument is missing or malformed */
#define HR_ENOTFOUND  -2   /* no employee with that id (or login) */
#define HR_EDUPLICATE -3   /* another employee has that login */
#define HR_EIO        -4   /* the data directory could not be read or written */
#define HR_ETOOSMALL  -5   /* an output buffer is too small */
#define HR_END         1   /* hr_next_employee: no more employees */

typedef struct hr_session hr_session;

/* Opens the employee store kept in `data_dir` (created if missing). NULL on failure. */
hr_session *hr_open(const char *data_dir);
void hr_close(hr_session *s);

/* The text of the last error of this session ("" if none). Valid until the next call. */
const char *hr_last_error(hr_session *s);

/* Adds an employee; writes the new employee number ("E000042") into out_id. `reference` is
 * free text another system keeps for the employee (may be NULL). */
int hr_add_employee(hr_session *s, const char *login, const char *first_name, const char *last_name,
                    const char *email, const char *reference, int32_t active, char *out_id, size_t out_len);

/* Reads an employee by number. */
int hr_get_employee(hr_session *s, const char *id, char *login, size_t login_len, char *first_name, size_t first_len,
                    char *last_name, size_t last_len, char *email, size_t email_len, char *reference, size_t reference_len,
                    int32_t *active);

/* Rewrites every field of an employee. */
int hr_update_employee(hr_session *s, const char *id, const char *login, const char *first_name, const char *last_name,
                       const char *email, const char *reference, int32_t active);

int hr_remove_employee(hr_session *s, const char *id);

/* The number of the employee with this login (case-insensitive). */
int hr_find_by_login(hr_session *s, const char *login, char *out_id, size_t out_len);

/* Iterates over all employees in number order: *position starts at 0; each call writes the
 * next number and advances *position; HR_END after the last. */
int hr_next_employee(hr_session *s, int64_t *position, char *out_id, size_t out_len);

/* Test hook: when the data directory holds a file crash-on-add whose text is a login, adding
 * that login crashes the process (a NULL write), as a faulty vendor library might. */

#endif
