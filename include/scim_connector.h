/*
 * scim_connector.h — the provisioning-agent connector ABI, version 1.4
 *
 * A connector is a shared object (.so) that the agent loads with dlopen and calls through
 * this header. It may be written in C, Swift, Rust or Zig; only this header is the contract.
 *
 * THE SHAPE OF A CONNECTOR
 *   The plugin exports one symbol, scimc_connector_entry, returning a pointer to a static
 *   scimc_connector descriptor. The host checks the descriptor, then opens one instance per
 *   app with the app's settings (JSON), and calls operations on that instance.
 *
 * DATA
 *   Resources, PATCH requests, queries and filters cross the boundary as UTF-8 JSON in
 *   scimc_buf {ptr, len} values. Buffers are NOT NUL-terminated.
 *   Results travel back through host->emit(call, ...), which COPIES the bytes: the plugin may
 *   free or reuse its buffer as soon as emit returns. Nothing allocated on one side of the
 *   boundary is ever freed on the other.
 *
 * STATUS
 *   Every operation returns a scimc_status: SCIMC_OK (0) or an HTTP status code from the list
 *   below, which the host turns into a SCIM error (RFC 7644 §3.12). Before returning an error
 *   the plugin may call host->fail(call, ...) to give a scimType and a detail message.
 *
 * THREADS
 *   Calls block; the host makes them on its own worker threads, never on its network event
 *   loops, unless the descriptor's flags have SCIMC_FLAG_NONBLOCKING (below). If the descriptor's flags lack SCIMC_FLAG_CONCURRENT, the host never calls one
 *   instance from two threads at once. With it, any operation may run concurrently with any
 *   other on the same instance, and the plugin does its own locking.
 *
 * VERSIONING
 *   abi_major changes only when an existing thing changes meaning; the host refuses a plugin
 *   whose abi_major differs from its own, or whose abi_minor is newer than its own. Structs are
 *   append-only: each starts with struct_size, and a reader ignores fields past the size the
 *   writer declared. Symbols and macros all start with scimc_ / SCIMC_.
 */
#ifndef SCIM_CONNECTOR_H
#define SCIM_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if !defined(__clang__)
#define _Nonnull
#define _Nullable
#endif

#define SCIMC_ABI_MAJOR 1
#define SCIMC_ABI_MINOR 4   /* 1.1: create_many; 1.2: replace_if; 1.3: SCIMC_FLAG_NONBLOCKING; 1.4: search cursors */

/* The exported entry point's name, for dlsym. */
#define SCIMC_ENTRY_SYMBOL "scimc_connector_entry"

/* ---- Status codes (HTTP statuses, so they map 1:1 onto SCIM errors) ------------------- */
typedef int32_t scimc_status;
#define SCIMC_OK 0
#define SCIMC_BAD_REQUEST 400        /* invalid value; scimType defaults to invalidValue */
#define SCIMC_FORBIDDEN 403          /* the target refused (e.g. insufficient rights) */
#define SCIMC_NOT_FOUND 404          /* no resource with that id */
#define SCIMC_CONFLICT 409           /* uniqueness violated; scimType defaults to uniqueness */
#define SCIMC_PRECONDITION 412       /* version mismatch: replace_if found the resource changed */
#define SCIMC_INTERNAL 500           /* a bug or an unexpected reply from the target */
#define SCIMC_NOT_IMPLEMENTED 501    /* the operation is not supported for this input */
#define SCIMC_UNAVAILABLE 503        /* the target cannot be reached now; the client may retry */

/* ---- Flags in scimc_connector.flags ---------------------------------------------------- */
/* Calls on one instance may run concurrently. */
#define SCIMC_FLAG_CONCURRENT (1u << 0)
/* The library holds no Swift (or other runtime-registered) code, so the host may dlclose it
 * once its last instance is closed. NEVER set this in a Swift plugin: see DESIGN.md. */
#define SCIMC_FLAG_UNLOADABLE (1u << 1)
/* No call ever waits: no I/O, no sleep, no lock held across either (an in-memory store).
 * The host then makes calls inline on the thread that serves the request instead of handing
 * them to its blocking pool. A connector that sets it and blocks stalls the agent's network
 * event loops: leave it unset whenever in doubt. Hosts before ABI 1.3 ignore it. */
#define SCIMC_FLAG_NONBLOCKING (1u << 2)

/* ---- Log levels for host->log ---------------------------------------------------------- */
#define SCIMC_LOG_DEBUG 0
#define SCIMC_LOG_INFO 1
#define SCIMC_LOG_WARNING 2
#define SCIMC_LOG_ERROR 3

/* A borrowed span of bytes. Valid only for the duration of the call it is passed to,
 * unless a comment says otherwise. `ptr` may be NULL only when `len` is 0. */
typedef struct scimc_buf {
    const char *_Nullable ptr;
    size_t len;
} scimc_buf;

/* Opaque: one open connection/configuration of a connector for one app. Allocated by the
 * plugin in open(), freed by the plugin in close(). The host never looks inside. */
typedef struct scimc_instance scimc_instance;

/* Opaque: the host's record of one call in progress. Valid from the moment an operation is
 * entered until it returns; pass it to emit/fail, never keep it. */
typedef struct scimc_call scimc_call;

/* ---- Host services, handed to the plugin (never exported by the executable) ----------- */
typedef struct scimc_host {
    /* sizeof(scimc_host) as the host knows it; read fields past it only if it is larger. */
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* Logs a message (UTF-8, `len` bytes, no NUL needed) under the connector's name; pass
     * the table you were handed as `host`. Callable from any thread, at any time between
     * open() and close(). Never log secrets. */
    void (*_Nonnull log)(const struct scimc_host *_Nonnull host, int level, const char *_Nonnull message, size_t len);

    /* Sets the result of `call`: the JSON the operation produces (see each operation).
     * Copies the bytes before returning. Calling it twice replaces the first result. */
    void (*_Nonnull emit)(scimc_call *_Nonnull call, const char *_Nonnull json, size_t len);

    /* Describes the failure the operation is about to return. `scim_type` is a NUL-terminated
     * RFC 7644 scimType keyword ("uniqueness", "invalidValue", "mutability", ...) or NULL;
     * `detail` is UTF-8 of `len` bytes shown to the client. Both are copied. */
    void (*_Nonnull fail)(scimc_call *_Nonnull call, const char *_Nullable scim_type,
                          const char *_Nonnull detail, size_t len);

    /* A process-wide value shared under `key` (NUL-terminated) that outlives any one
     * instance and any one build of the library: how an in-memory connector hands its data to
     * the next generation of itself on hot reload. If `key` has a value, its reference count
     * grows and the value is returned; otherwise `create(context)` is called (under the host's
     * lock) and its result stored with a count of 1. The value is the plugin's to interpret;
     * it must not point into the library's static data (the library may be unloaded). */
    void *_Nullable (*_Nonnull shared_acquire)(const struct scimc_host *_Nonnull host, const char *_Nonnull key,
                                               void *_Nullable (*_Nonnull create)(void *_Nullable context),
                                               void *_Nullable context);

    /* Drops one reference to `key`. When the count reaches 0 the host removes the entry and
     * calls `destroy(value)` before returning. */
    void (*_Nonnull shared_release)(const struct scimc_host *_Nonnull host, const char *_Nonnull key,
                                    void (*_Nonnull destroy)(void *_Nullable value));

    /* The directory of the agent's configuration file, NUL-terminated, absolute. Settings are
     * handed over untouched, so a relative path in them (e.g. flatfile's "directory") is
     * resolved against this, as every relative path in the configuration is. Valid until
     * close() returns. */
    const char *_Nonnull config_directory;
} scimc_host;

/* ---- Operations on one resource type (users or groups) -------------------------------- */
/* Each may be NULL: "not implemented". The agent derives its advertised capabilities from
 * which pointers are set, and answers 501 itself for a NULL operation without calling you.
 *
 * Resources are SCIM JSON objects ("schemas", "id", "userName", ..., extension objects under
 * their URN). The host has already validated and normalised incoming resources against the
 * schema: attribute names are spelled as RFC 7643 spells them, booleans are booleans.
 * "meta" in an incoming resource is to be ignored; the plugin may emit meta.created,
 * meta.lastModified (RFC 3339); the host fills meta.resourceType, location and the ETag.
 * A plugin that keeps a version of each resource (a counter, a row version, a directory's
 * entryCSN) may emit it as meta.version from get: opaque text that changes with every write.
 * The host never shows it to clients; it comes back to replace_if inside `expected`. */
typedef struct scimc_resource_ops {
    uint32_t struct_size;

    /* Creates a resource. `resource` has no "id". Emit the stored resource with its new "id".
     * Return SCIMC_CONFLICT if a unique attribute (userName, a group's displayName if the
     * target enforces it) is taken. */
    scimc_status (*_Nullable create)(scimc_instance *_Nonnull, scimc_call *_Nonnull, scimc_buf resource);

    /* Emits the resource with this id, or returns SCIMC_NOT_FOUND. */
    scimc_status (*_Nullable get)(scimc_instance *_Nonnull, scimc_call *_Nonnull, scimc_buf id);

    /* Replaces the resource with this id by `resource` (PUT semantics: attributes absent from
     * `resource` are cleared). Emits the stored result. */
    scimc_status (*_Nullable replace)(scimc_instance *_Nonnull, scimc_call *_Nonnull, scimc_buf id,
                                      scimc_buf resource);

    /* Applies a PatchOp message (RFC 7644 §3.5.2) natively. Optional even when replace is
     * set: without it the host does get -> apply -> replace_if (or replace). Emits the result.
     * A native patch must apply atomically: to the resource as stored when it runs. */
    scimc_status (*_Nullable patch)(scimc_instance *_Nonnull, scimc_call *_Nonnull, scimc_buf id,
                                    scimc_buf patch_op);

    /* Deletes the resource with this id, or returns SCIMC_NOT_FOUND. Emits nothing. */
    scimc_status (*_Nullable remove)(scimc_instance *_Nonnull, scimc_call *_Nonnull, scimc_buf id);

    /* Lists resources. `query` is JSON:
     *   {"filter": AST or absent, "startIndex": 1, "count": N or absent,
     *    "sortBy": "path" or absent, "sortOrder": "ascending"|"descending",
     *    "withoutMembers": true or absent, "cursor": text or absent}
     * "withoutMembers": the client asked for groups without their members (excludedAttributes
     * =members, as Microsoft Entra ID does) and the filter does not read them: you may leave
     * members out when reading them is costly. The host removes them anyway.
     * "cursor" (ABI 1.4): the client pages by RFC 9865 cursor. "" for the first page, else the
     * "nextCursor" your reply for the page before gave (it rides inside the agent's own
     * cursor, so any agent on the target may be handed it, and a client may have altered it:
     * check it, and fail with SCIMC_BAD_REQUEST and scimType "invalidCursor" if it is not
     * yours). startIndex is always given too: ignore "cursor" and page by startIndex if you
     * like. To page by it, emit "paged": true with "nextCursor": the next page's, or "" after
     * the last page; keep what you need in it (a last key, the total), not in memory.
     * A filter AST node is one of (paths are attribute paths as text, e.g. "name.givenName",
     * "emails.value" or "urn:...:enterprise:2.0:User:employeeNumber"):
     *   {"op":"eq"|"ne"|"co"|"sw"|"ew"|"gt"|"ge"|"lt"|"le", "path":P, "value":V}
     *   {"op":"pr", "path":P}
     *   {"op":"and"|"or", "filters":[A, B, ...]}
     *   {"op":"not", "filter":A}
     *   {"op":"valuePath", "path":"emails", "filter":A}   (A's paths relative to each email)
     * Emit:
     *   {"Resources":[...], "totalResults":N, "filtered":bool, "sorted":bool, "paged":bool,
     *    "nextCursor": text (only given a "cursor", only with "paged")}
     * "filtered": true only if every returned resource matches the whole filter and none that
     * matches was left out. When false, the host evaluates the filter itself over what you
     * return, so return a superset (e.g. everything). "sorted": results follow sortBy.
     * "paged": you applied startIndex/count yourself; only allowed when filtered is true (and
     * sorted, if sortBy was given); "totalResults" then counts all matches. When paged is
     * false, the host pages and counts. */
    scimc_status (*_Nullable search)(scimc_instance *_Nonnull, scimc_call *_Nonnull, scimc_buf query);

    /* ABI 1.1. Optional: creates several resources in one go (say one multi-row INSERT and one
     * commit), each on its own: one that fails must not fail the others. `resources` is a JSON
     * array of resources as `create` takes them. Emit one JSON array with one outcome per
     * resource, in the same order:
     *   {"resource": {...the stored resource with its "id"...}}
     *   {"status": 409, "scimType": "uniqueness", "detail": "userName ... is taken"}
     * ("status" is 400..599, "scimType" optional). Return SCIMC_OK when the array is emitted;
     * any other status fails every resource of the call. When this is set, the host sends every
     * create through it: while one call is running, the creates that arrive meanwhile wait and
     * go together in the next call (at most SCIMC_CREATE_MANY_MAX per call, and at most two
     * calls at once per instance), so a batch grows with the load and is a single resource
     * when the target is idle. `create` may be NULL then. */
    scimc_status (*_Nullable create_many)(scimc_instance *_Nonnull, scimc_call *_Nonnull, scimc_buf resources);

    /* ABI 1.2. Optional: a conditional replace, what makes the host's PATCH (get -> apply ->
     * replace) and a PUT with If-Match safe against concurrent writers, in this agent or in
     * another one on the same target. `expected` is the resource exactly as your get emitted
     * it when the host read it. Replace only if the stored resource is still that version,
     * checked and written as one atomic step (under your lock, in one transaction, or as a
     * conditional write the target offers): compare meta.version if your get emits one, the
     * whole resource otherwise. If it changed, return SCIMC_PRECONDITION and write nothing:
     * the host reads it again, re-applies the PATCH and retries (a bounded number of times).
     * Otherwise as replace. Without it the host serialises its own updates of one resource but
     * cannot guard against another agent, and `check` says so. */
    scimc_status (*_Nullable replace_if)(scimc_instance *_Nonnull, scimc_call *_Nonnull, scimc_buf id,
                                         scimc_buf resource, scimc_buf expected);
} scimc_resource_ops;

/* The most resources the host passes to one create_many call. */
#define SCIMC_CREATE_MANY_MAX 100

/* ---- The descriptor --------------------------------------------------------------------- */
typedef struct scimc_connector {
    uint32_t struct_size;      /* sizeof(scimc_connector) as the plugin was compiled */
    uint16_t abi_major;        /* SCIMC_ABI_MAJOR */
    uint16_t abi_minor;        /* SCIMC_ABI_MINOR */
    const char *_Nonnull name;    /* the connector's name, as apps.<app>.connector names it */
    const char *_Nonnull version; /* the plugin's own version, free text */
    uint64_t flags;            /* SCIMC_FLAG_* */
    /* The compiler the plugin was built with, e.g. "swift-6.3.1", or NULL for a plugin with
     * no language runtime of its own (C, Zig). A Swift plugin must be built with the agent's
     * own toolchain (Swift has no stable ABI on Linux); the host refuses a mismatch. */
    const char *_Nullable toolchain;

    /* Opens an instance for one app. `app` is the app's name (NUL-terminated, valid for the
     * call). `settings` is apps.<app>.settings as JSON ("{}" when absent). `host` stays valid
     * until close() returns. On a hot reload or a configuration reload the host opens the new
     * instance while the old one still finishes its calls, so the two may briefly coexist.
     * On success store the instance in *out and return SCIMC_OK; on failure call
     * host->fail(call, ...) to say what is wrong (e.g. which setting is missing) and return a
     * status. */
    scimc_status (*_Nonnull open)(const scimc_host *_Nonnull host, scimc_call *_Nonnull call, const char *_Nonnull app,
                                  scimc_buf settings, scimc_instance *_Nullable *_Nonnull out);

    /* Closes an instance. The host calls it once, after the last call on it has returned. */
    void (*_Nonnull close)(scimc_instance *_Nonnull);

    /* Checks that the target is reachable and usable (the "Test Connector Configuration"
     * button). Emit optional JSON {"message": "..."}; fail with a detail naming the problem. */
    scimc_status (*_Nullable test)(scimc_instance *_Nonnull, scimc_call *_Nonnull);

    /* Emits fine-grained capabilities as JSON, all keys optional:
     *   {"users":  {"attributes": ["userName", "name.givenName", ...] (default: all),
     *               "sort": bool, "passwordWritable": bool, "activeWritable": bool,
     *               "filterAttributes": [...], "filterOperators": [...],
     *               "required": ["active", ...] (attributes the target always holds),
     *               "schemaExtensions": [Schema JSON as /Schemas publishes it]},
     *    "groups": {"attributes": [...], "sort": bool, ...}}
     * "users": false or "groups": false says this instance has none of them even though the
     * descriptor has the operations (e.g. a database mapping without group tables).
     * NULL: all attributes, no sorting, password and active writable if users can be written. */
    scimc_status (*_Nullable describe)(scimc_instance *_Nonnull, scimc_call *_Nonnull);

    /* Users and groups. NULL: the connector has none of that resource type. */
    const scimc_resource_ops *_Nullable users;
    const scimc_resource_ops *_Nullable groups;

    /* Adds / removes group members without rewriting the group. `members` is a JSON array of
     * member objects as the client sent them: {"value": "<user or group id>"} with, when
     * given, "type" ("User" or "Group"), "display" and "$ref". Adding a present member or
     * removing an absent one is not an error. A group that does not exist: SCIMC_NOT_FOUND
     * (the host does not read the group first). Emits nothing. NULL: the host uses
     * groups->patch or get + replace. */
    scimc_status (*_Nullable add_members)(scimc_instance *_Nonnull, scimc_call *_Nonnull,
                                          scimc_buf group_id, scimc_buf members);
    scimc_status (*_Nullable remove_members)(scimc_instance *_Nonnull, scimc_call *_Nonnull,
                                             scimc_buf group_id, scimc_buf members);
} scimc_connector;

/* The one symbol a connector exports. Returns a pointer to a descriptor that lives as long
 * as the library is loaded (a static). May be called more than once. */
typedef const scimc_connector *_Nonnull (*scimc_entry_fn)(void);
const scimc_connector *_Nonnull scimc_connector_entry(void);

#ifdef __cplusplus
}
#endif
#endif /* SCIM_CONNECTOR_H */
