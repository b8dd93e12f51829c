/*
 * records.c - the typed reads and writes of state.db (state.h).
 *
 * All SQL of the project lives in state/.  Statements are prepared per
 * call and bound through one helper whose type string says what each
 * variadic argument is:
 *   's'  const char *  (NULL binds SQL NULL)
 *   'I'  int64_t
 *   'i'  int
 *   'N'  int64_t, where 0 binds SQL NULL (an unset time)
 * Writes are refused in STATE_RDONLY: that connection may be an in-memory
 * stand-in for a missing database, where a write would silently vanish.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fault.h"
#include "state_int.h"
#include "xalloc.h"

#define REPOS_USED_MAX ((size_t)16 << 20)

static int bindv(sqlite3_stmt *stmt, const char *types, va_list ap)
{
    for (int i = 0; types[i] != '\0'; i++) {
        int rc = SQLITE_OK;
        switch (types[i]) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            rc = s != NULL ? sqlite3_bind_text(stmt, i + 1, s, -1, SQLITE_TRANSIENT)
                           : sqlite3_bind_null(stmt, i + 1);
            break;
        }
        case 'I':
            rc = sqlite3_bind_int64(stmt, i + 1, va_arg(ap, int64_t));
            break;
        case 'i':
            rc = sqlite3_bind_int(stmt, i + 1, va_arg(ap, int));
            break;
        case 'N': {
            int64_t v = va_arg(ap, int64_t);
            rc = v != 0 ? sqlite3_bind_int64(stmt, i + 1, v) : sqlite3_bind_null(stmt, i + 1);
            break;
        }
        default:
            return BD_E_INTERNAL;
        }
        if (rc != SQLITE_OK)
            return state_sqlite_err(rc);
    }
    return 0;
}

/* Prepares sql and binds the arguments; *ret_stmt is finalized by the caller. */
static int prep(struct state *st, sqlite3_stmt **ret_stmt, const char *sql, const char *types, ...)
{
    sqlite3_stmt *stmt = NULL;
    va_list ap;
    int rc = state_sqlite_err(sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL));

    if (rc < 0)
        return rc;
    va_start(ap, types);
    rc = bindv(stmt, types, ap);
    va_end(ap);
    if (rc < 0) {
        sqlite3_finalize(stmt);
        return rc;
    }
    *ret_stmt = stmt;
    return 0;
}

/* Runs one writing statement to completion; *ret_changes if not NULL. */
static int wexec(struct state *st, int *ret_changes, const char *sql, const char *types, ...)
{
    sqlite3_stmt *stmt = NULL;
    va_list ap;
    int rc;

    if (st->mode == STATE_RDONLY)
        return BD_E_INVAL;
    rc = state_sqlite_err(sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL));
    if (rc < 0)
        return rc;
    va_start(ap, types);
    rc = bindv(stmt, types, ap);
    va_end(ap);
    if (rc == 0) {
        int s = sqlite3_step(stmt);
        rc = s == SQLITE_DONE ? 0 : state_sqlite_err(s == SQLITE_ROW ? SQLITE_MISMATCH : s);
    }
    if (rc == 0 && ret_changes != NULL)
        *ret_changes = sqlite3_changes(st->db);
    sqlite3_finalize(stmt);
    return rc;
}

/* Steps through the rows of stmt, calling row(stmt, arg) until it returns nonzero. */
static int each_row(sqlite3_stmt *stmt, int (*row)(sqlite3_stmt *stmt, void *ctx), void *ctx)
{
    int rc;

    for (;;) {
        int s = sqlite3_step(stmt);
        if (s == SQLITE_DONE) {
            rc = 0;
            break;
        }
        if (s != SQLITE_ROW) {
            rc = state_sqlite_err(s);
            break;
        }
        rc = row(stmt, ctx);
        if (rc != 0)
            break;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static const char *col_text(sqlite3_stmt *stmt, int i)
{
    return (const char *)sqlite3_column_text(stmt, i);
}

static char *col_dup(sqlite3_stmt *stmt, int i)
{
    const char *s = col_text(stmt, i);
    return s != NULL ? xstrdup(s) : NULL;
}

/* ---- transactions ------------------------------------------------------ */

int state_begin(struct state *st)
{
    int rc;

    if (st->in_tx || st->mode == STATE_RDONLY)
        return BD_E_INVAL;
    rc = state_sqlite_err(sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
    if (rc == 0)
        st->in_tx = 1;
    return rc;
}

int state_commit(struct state *st)
{
    int rc;

    if (!st->in_tx)
        return BD_E_INVAL;
    fault_point("state commit");
    /* A failed COMMIT (busy) leaves the transaction open: roll back or retry. */
    rc = state_sqlite_err(sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL));
    if (rc == 0)
        st->in_tx = 0;
    return rc;
}

void state_rollback(struct state *st)
{
    if (!st->in_tx)
        return;
    (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    st->in_tx = 0;
}

/* ---- manifests --------------------------------------------------------- */

int state_manifest_put(struct state *st, const struct state_manifest *m)
{
    if (m->path == NULL || m->content_hash == NULL)
        return BD_E_INVAL;
    return wexec(st, NULL,
                 "INSERT INTO manifests (path, content_hash, bottle, parse_error, seen_at)"
                 " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (path) DO UPDATE SET"
                 " content_hash = excluded.content_hash, bottle = excluded.bottle,"
                 " parse_error = excluded.parse_error, seen_at = excluded.seen_at",
                 "ssssI", m->path, m->content_hash, m->bottle, m->parse_error, state_now());
}

int state_manifest_forget(struct state *st, const char *path)
{
    return wexec(st, NULL, "DELETE FROM manifests WHERE path = ?1", "s", path);
}

struct manifest_ctx {
    int (*fn)(const struct state_manifest *m, void *arg);
    void *arg;
};

static int manifest_row(sqlite3_stmt *stmt, void *ctx)
{
    struct manifest_ctx *c = ctx;
    struct state_manifest m = {
        .path = col_text(stmt, 0),
        .content_hash = col_text(stmt, 1),
        .bottle = col_text(stmt, 2),
        .parse_error = col_text(stmt, 3),
        .seen_at = sqlite3_column_int64(stmt, 4),
    };
    return c->fn(&m, c->arg);
}

int state_manifests_each(struct state *st, int (*cb)(const struct state_manifest *m, void *arg),
                         void *arg)
{
    struct manifest_ctx c = {cb, arg};
    sqlite3_stmt *stmt = NULL;
    int rc = prep(st, &stmt,
                  "SELECT path, content_hash, bottle, parse_error, seen_at FROM manifests"
                  " ORDER BY path",
                  "");

    return rc < 0 ? rc : each_row(stmt, manifest_row, &c);
}

/* ---- bottles ----------------------------------------------------------- */

static const char *const phase_names[] = {
    [STATE_PHASE_READY] = "Ready",       [STATE_PHASE_RECONCILING] = "Reconciling",
    [STATE_PHASE_STALLED] = "Stalled",   [STATE_PHASE_DEGRADED] = "Degraded",
    [STATE_PHASE_DELETING] = "Deleting",
};

const char *state_phase_name(enum state_phase p)
{
    if ((unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]))
        return phase_names[p];
    return "Unknown";
}

int state_phase_parse(const char *s, enum state_phase *ret_phase)
{
    for (size_t i = 0; s != NULL && i < sizeof(phase_names) / sizeof(phase_names[0]); i++) {
        if (strcmp(s, phase_names[i]) == 0) {
            *ret_phase = (enum state_phase)i;
            return 0;
        }
    }
    return BD_E_INVAL;
}

int state_bottle_put(struct state *st, const struct state_bottle *b)
{
    if (b->name == NULL || (unsigned)b->phase > STATE_PHASE_DELETING)
        return BD_E_INVAL;
    return wexec(st, NULL,
                 "INSERT INTO bottles (name, generation, spec_hash, manifest_hash, config_hash,"
                 " phase, reason, last_error, failures, next_retry, updated_at, last_pass_at,"
                 " last_pass_ms)"
                 " VALUES (?1, ?2 IS NOT NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                 " ON CONFLICT (name) DO UPDATE SET"
                 " generation = generation + (excluded.spec_hash IS NOT NULL"
                 "   AND excluded.spec_hash IS NOT spec_hash),"
                 " spec_hash = excluded.spec_hash, manifest_hash = excluded.manifest_hash,"
                 " config_hash = excluded.config_hash, phase = excluded.phase,"
                 " reason = excluded.reason, last_error = excluded.last_error,"
                 " failures = excluded.failures, next_retry = excluded.next_retry,"
                 " updated_at = excluded.updated_at, last_pass_at = excluded.last_pass_at,"
                 " last_pass_ms = excluded.last_pass_ms",
                 "sssssssiNINI", b->name, b->spec_hash, b->manifest_hash, b->config_hash,
                 state_phase_name(b->phase), b->reason, b->last_error, b->failures, b->next_retry,
                 state_now(), b->last_pass_at, b->last_pass_ms);
}

#define BOTTLE_COLS                                                                                \
    "name, generation, spec_hash, manifest_hash, config_hash, phase, reason, last_error,"          \
    " failures, next_retry, updated_at, last_pass_at, last_pass_ms"

/* Fills b with borrowed strings from the row. */
static void bottle_from_row(sqlite3_stmt *stmt, struct state_bottle *b)
{
    enum state_phase phase = STATE_PHASE_RECONCILING;

    (void)state_phase_parse(col_text(stmt, 5), &phase);
    *b = (struct state_bottle){
        .name = col_text(stmt, 0),
        .generation = sqlite3_column_int64(stmt, 1),
        .spec_hash = col_text(stmt, 2),
        .manifest_hash = col_text(stmt, 3),
        .config_hash = col_text(stmt, 4),
        .phase = phase,
        .reason = col_text(stmt, 6),
        .last_error = col_text(stmt, 7),
        .failures = sqlite3_column_int(stmt, 8),
        .next_retry = sqlite3_column_int64(stmt, 9),
        .updated_at = sqlite3_column_int64(stmt, 10),
        .last_pass_at = sqlite3_column_int64(stmt, 11),
        .last_pass_ms = sqlite3_column_int64(stmt, 12),
    };
}

int state_bottle_get(struct state *st, const char *name, struct state_bottle *ret_b)
{
    sqlite3_stmt *stmt = NULL;
    struct state_bottle b;
    int rc = prep(st, &stmt, "SELECT " BOTTLE_COLS " FROM bottles WHERE name = ?1", "s", name);

    if (rc < 0)
        return rc;
    int s = sqlite3_step(stmt);
    if (s == SQLITE_ROW) {
        bottle_from_row(stmt, &b);
        b.name = col_dup(stmt, 0);
        b.spec_hash = col_dup(stmt, 2);
        b.manifest_hash = col_dup(stmt, 3);
        b.config_hash = col_dup(stmt, 4);
        b.reason = col_dup(stmt, 6);
        b.last_error = col_dup(stmt, 7);
        *ret_b = b;
        rc = 0;
    } else {
        rc = s == SQLITE_DONE ? BD_E_NOTFOUND : state_sqlite_err(s);
    }
    sqlite3_finalize(stmt);
    return rc;
}

void state_bottle_release(struct state_bottle *b)
{
    free((char *)b->name);
    free((char *)b->spec_hash);
    free((char *)b->manifest_hash);
    free((char *)b->config_hash);
    free((char *)b->reason);
    free((char *)b->last_error);
    memset(b, 0, sizeof(*b));
}

struct bottle_ctx {
    int (*fn)(const struct state_bottle *b, void *arg);
    void *arg;
};

static int bottle_row(sqlite3_stmt *stmt, void *ctx)
{
    struct bottle_ctx *c = ctx;
    struct state_bottle b;

    bottle_from_row(stmt, &b);
    return c->fn(&b, c->arg);
}

int state_bottles_each(struct state *st, int (*cb)(const struct state_bottle *b, void *arg),
                       void *arg)
{
    struct bottle_ctx c = {cb, arg};
    sqlite3_stmt *stmt = NULL;
    int rc = prep(st, &stmt, "SELECT " BOTTLE_COLS " FROM bottles ORDER BY name", "");

    return rc < 0 ? rc : each_row(stmt, bottle_row, &c);
}

int state_bottle_forget(struct state *st, const char *name)
{
    /* resources go with it: ON DELETE CASCADE */
    return wexec(st, NULL, "DELETE FROM bottles WHERE name = ?1", "s", name);
}

/* ---- resources --------------------------------------------------------- */

int state_resource_put(struct state *st, const struct state_resource *r)
{
    int64_t now = state_now();
    int rc;

    if (r->bottle == NULL || r->role == NULL || r->name == NULL)
        return BD_E_INVAL;
    rc = wexec(st, NULL, "INSERT OR IGNORE INTO bottles (name, updated_at) VALUES (?1, ?2)", "sI",
               r->bottle, now);
    if (rc < 0)
        return rc;
    return wexec(st, NULL,
                 "INSERT INTO resources (bottle, role, name, engine_id, spec_hash, created_at)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (bottle, role) DO UPDATE SET"
                 " name = excluded.name, spec_hash = excluded.spec_hash,"
                 " engine_id = excluded.engine_id,"
                 " created_at = CASE WHEN excluded.engine_id IS NOT engine_id"
                 "   THEN excluded.created_at ELSE created_at END",
                 "sssssI", r->bottle, r->role, r->name, r->engine_id, r->spec_hash, now);
}

int state_resource_forget(struct state *st, const char *bottle, const char *role)
{
    return wexec(st, NULL, "DELETE FROM resources WHERE bottle = ?1 AND role = ?2", "ss", bottle,
                 role);
}

struct resource_ctx {
    int (*fn)(const struct state_resource *r, void *arg);
    void *arg;
};

static int resource_row(sqlite3_stmt *stmt, void *ctx)
{
    struct resource_ctx *c = ctx;
    struct state_resource r = {
        .bottle = col_text(stmt, 0),
        .role = col_text(stmt, 1),
        .name = col_text(stmt, 2),
        .engine_id = col_text(stmt, 3),
        .spec_hash = col_text(stmt, 4),
        .created_at = sqlite3_column_int64(stmt, 5),
    };
    return c->fn(&r, c->arg);
}

int state_resources_each(struct state *st, const char *bottle,
                         int (*cb)(const struct state_resource *r, void *arg), void *arg)
{
    struct resource_ctx c = {cb, arg};
    sqlite3_stmt *stmt = NULL;
    int rc = prep(st, &stmt,
                  "SELECT bottle, role, name, engine_id, spec_hash, created_at FROM resources"
                  " WHERE ?1 IS NULL OR bottle = ?1 ORDER BY bottle, role",
                  "s", bottle);

    return rc < 0 ? rc : each_row(stmt, resource_row, &c);
}

/* ---- deploy keys ------------------------------------------------------- */

static const char *const key_state_names[] = {
    [STATE_KEY_INTENT] = "intent",
    [STATE_KEY_REGISTERED] = "registered",
    [STATE_KEY_DELETING] = "deleting",
};

const char *state_key_state_name(enum state_key_state k)
{
    if ((unsigned)k < sizeof(key_state_names) / sizeof(key_state_names[0]))
        return key_state_names[k];
    return "unknown";
}

int state_deploy_key_put(struct state *st, const struct state_deploy_key *k)
{
    if (k->bottle == NULL || k->forge == NULL || k->repo == NULL || k->fingerprint == NULL ||
        (unsigned)k->state > STATE_KEY_DELETING)
        return BD_E_INVAL;
    return wexec(st, NULL,
                 "INSERT INTO deploy_keys (bottle, forge, repo, key_id, fingerprint, state,"
                 " updated_at, api_root, repo_path, token_env, checked_at)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                 " ON CONFLICT (bottle, forge, repo) DO UPDATE SET key_id = excluded.key_id,"
                 " fingerprint = excluded.fingerprint, state = excluded.state,"
                 " updated_at = excluded.updated_at, api_root = excluded.api_root,"
                 " repo_path = excluded.repo_path, token_env = excluded.token_env,"
                 " checked_at = excluded.checked_at",
                 "ssssssIsssI", k->bottle, k->forge, k->repo, k->key_id, k->fingerprint,
                 state_key_state_name(k->state), state_now(), k->api_root ? k->api_root : "",
                 k->repo_path ? k->repo_path : "", k->token_env, k->checked_at);
}

int state_deploy_key_forget(struct state *st, const char *bottle, const char *forge,
                            const char *repo)
{
    return wexec(st, NULL, "DELETE FROM deploy_keys WHERE bottle = ?1 AND forge = ?2 AND repo = ?3",
                 "sss", bottle, forge, repo);
}

struct key_ctx {
    int (*fn)(const struct state_deploy_key *k, void *arg);
    void *arg;
};

static int key_row(sqlite3_stmt *stmt, void *ctx)
{
    struct key_ctx *c = ctx;
    const char *state = col_text(stmt, 5);
    struct state_deploy_key k = {
        .bottle = col_text(stmt, 0),
        .forge = col_text(stmt, 1),
        .repo = col_text(stmt, 2),
        .key_id = col_text(stmt, 3),
        .fingerprint = col_text(stmt, 4),
        .state = STATE_KEY_INTENT,
        .updated_at = sqlite3_column_int64(stmt, 6),
        .api_root = col_text(stmt, 7),
        .repo_path = col_text(stmt, 8),
        .token_env = col_text(stmt, 9),
        .checked_at = sqlite3_column_int64(stmt, 10),
    };
    for (size_t i = 0; state != NULL && i < sizeof(key_state_names) / sizeof(key_state_names[0]);
         i++)
        if (strcmp(state, key_state_names[i]) == 0)
            k.state = (enum state_key_state)i;
    return c->fn(&k, c->arg);
}

int state_deploy_keys_each(struct state *st, const char *bottle,
                           int (*cb)(const struct state_deploy_key *k, void *arg), void *arg)
{
    struct key_ctx c = {cb, arg};
    sqlite3_stmt *stmt = NULL;
    int rc = prep(st, &stmt,
                  "SELECT bottle, forge, repo, key_id, fingerprint, state, updated_at,"
                  " api_root, repo_path, token_env, checked_at FROM deploy_keys WHERE ?1 IS NULL "
                  "OR bottle = ?1"
                  " ORDER BY bottle, forge, repo",
                  "s", bottle);

    return rc < 0 ? rc : each_row(stmt, key_row, &c);
}

/* ---- host keys learned by gates ---------------------------------------- */

int state_host_key_put(struct state *st, const char *bottle, const char *repo, const char *host_key)
{
    if (bottle == NULL || repo == NULL || host_key == NULL || !host_key[0] ||
        strpbrk(host_key, "\r\n") != NULL)
        return BD_E_INVAL;
    return wexec(
        st, NULL,
        "INSERT INTO host_keys (bottle, repo, host_key, learned_at) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (bottle, repo) DO UPDATE SET host_key = excluded.host_key,"
        " learned_at = excluded.learned_at",
        "sssI", bottle, repo, host_key, state_now());
}

int state_host_keys_forget(struct state *st, const char *bottle)
{
    return wexec(st, NULL, "DELETE FROM host_keys WHERE bottle = ?1", "s", bottle);
}

struct host_key_ctx {
    int (*fn)(const char *bottle, const char *repo, const char *host_key, void *arg);
    void *arg;
};

static int host_key_row(sqlite3_stmt *stmt, void *ctx)
{
    struct host_key_ctx *c = ctx;
    return c->fn(col_text(stmt, 0), col_text(stmt, 1), col_text(stmt, 2), c->arg);
}

int state_host_keys_each(struct state *st, const char *bottle,
                         int (*cb)(const char *bottle, const char *repo, const char *host_key,
                                   void *arg),
                         void *arg)
{
    struct host_key_ctx c = {cb, arg};
    sqlite3_stmt *stmt = NULL;
    int rc = prep(st, &stmt,
                  "SELECT bottle, repo, host_key FROM host_keys WHERE ?1 IS NULL OR bottle = ?1"
                  " ORDER BY bottle, repo",
                  "s", bottle);

    return rc < 0 ? rc : each_row(stmt, host_key_row, &c);
}

/* ---- repos used -------------------------------------------------------- */

static int plain_field(const char *s)
{
    return s != NULL && s[0] != '\0' && strpbrk(s, "\t\r\n") == NULL;
}

static int append_repos_file(struct state *st, const char *line, size_t len)
{
    int fd = openat(st->dirfd, "repos-used", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                    0600);
    int rc = BD_E_IO;

    if (fd < 0)
        return BD_E_IO;
    while (len > 0) {
        ssize_t w = write(fd, line, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        line += w;
        len -= (size_t)w;
    }
    if (fsync(fd) == 0)
        rc = 0;
out:
    close(fd);
    return rc;
}

int state_repo_used(struct state *st, const char *forge, const char *api_root, const char *repo)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (!plain_field(forge) || !plain_field(api_root) || !plain_field(repo) ||
        st->mode == STATE_RDONLY)
        return BD_E_INVAL;
    rc =
        prep(st, &stmt, "SELECT 1 FROM repos_used WHERE forge = ?1 AND api_root = ?2 AND repo = ?3",
             "sss", forge, api_root, repo);
    if (rc < 0)
        return rc;
    int s = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (s == SQLITE_ROW)
        return 0;
    if (s != SQLITE_DONE)
        return state_sqlite_err(s);
    /* The file first: it is what survives losing the database. */
    char *line = xasprintf("%s\t%s\t%s\n", forge, api_root, repo);
    rc = append_repos_file(st, line, strlen(line));
    free(line);
    if (rc < 0)
        return rc;
    return wexec(st, NULL,
                 "INSERT OR IGNORE INTO repos_used (forge, api_root, repo, first_seen)"
                 " VALUES (?1, ?2, ?3, ?4)",
                 "sssI", forge, api_root, repo, state_now());
}

struct repo_list {
    char **v; /* "forge\tapi_root\trepo" */
    size_t n, cap;
};

static void repo_list_add(struct repo_list *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = s;
}

static int repo_row(sqlite3_stmt *stmt, void *ctx)
{
    repo_list_add(ctx,
                  xasprintf("%s\t%s\t%s", col_text(stmt, 0), col_text(stmt, 1), col_text(stmt, 2)));
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the well-formed lines of repos-used; a torn last line is skipped. */
static int read_repos_file(struct state *st, struct repo_list *l)
{
    struct buf b;
    char *path = xasprintf("%s/repos-used", st->dir);
    int rc;

    buf_init(&b, REPOS_USED_MAX);
    rc = buf_read_file(&b, path);
    if (rc == BD_E_IO && errno == ENOENT)
        rc = 0;
    for (size_t i = 0; rc == 0 && i < b.len;) {
        const char *line = b.data + i;
        const char *nl = memchr(line, '\n', b.len - i);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - line);
        i += len + 1;
        const char *t1 = memchr(line, '\t', len);
        const char *t2 = t1 != NULL ? memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1)) : NULL;
        if (t2 == NULL || t1 == line || t2 == t1 + 1 || t2 + 1 == nl ||
            memchr(t2 + 1, '\t', (size_t)(nl - t2 - 1)) != NULL || memchr(line, '\0', len))
            continue;
        repo_list_add(l, xstrndup(line, len));
    }
    buf_release(&b);
    free(path);
    return rc;
}

int state_repos_used_each(struct state *st,
                          int (*cb)(const char *forge, const char *api_root, const char *repo,
                                    void *arg),
                          void *arg)
{
    struct repo_list l = {0};
    sqlite3_stmt *stmt = NULL;
    int rc;

    rc = prep(st, &stmt, "SELECT forge, api_root, repo FROM repos_used", "");
    if (rc == 0)
        rc = each_row(stmt, repo_row, &l);
    if (rc == 0)
        rc = read_repos_file(st, &l);
    if (rc == 0 && l.n > 0)
        qsort(l.v, l.n, sizeof(*l.v), cmp_str);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (i > 0 && strcmp(l.v[i], l.v[i - 1]) == 0)
            continue;
        char *s = xstrdup(l.v[i]);
        char *t1 = strchr(s, '\t');
        char *t2 = strchr(t1 + 1, '\t');
        *t1 = *t2 = '\0';
        rc = cb(s, t1 + 1, t2 + 1, arg);
        free(s);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    return rc;
}

/* ---- events ------------------------------------------------------------ */

int state_event_add(struct state *st, const char *bottle, const char *kind, const char *detail)
{
    if (kind == NULL)
        return BD_E_INVAL;
    return wexec(st, NULL, "INSERT INTO events (ts, bottle, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                 "Isss", state_now(), bottle, kind, detail);
}

struct event_ctx {
    int (*fn)(const struct state_event *e, void *arg);
    void *arg;
};

static int event_row(sqlite3_stmt *stmt, void *ctx)
{
    struct event_ctx *c = ctx;
    struct state_event e = {
        .id = sqlite3_column_int64(stmt, 0),
        .ts = sqlite3_column_int64(stmt, 1),
        .bottle = col_text(stmt, 2),
        .kind = col_text(stmt, 3),
        .detail = col_text(stmt, 4),
    };
    return c->fn(&e, c->arg);
}

int state_events_each(struct state *st, const char *bottle, size_t limit,
                      int (*cb)(const struct state_event *e, void *arg), void *arg)
{
    struct event_ctx c = {cb, arg};
    sqlite3_stmt *stmt = NULL;
    int64_t lim = limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
    int rc = prep(st, &stmt,
                  "SELECT id, ts, bottle, kind, detail FROM (SELECT * FROM events"
                  " WHERE ?1 IS NULL OR bottle = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
                  "sI", bottle, lim);

    return rc < 0 ? rc : each_row(stmt, event_row, &c);
}

/* ---- intents ----------------------------------------------------------- */

int state_intent_begin(struct state *st, const char *bottle, const char *action,
                       const char *resource, int64_t *ret_id)
{
    int rc;

    /* Inside a transaction the intent would not be durable before the side effect. */
    if (st->in_tx || bottle == NULL || action == NULL || resource == NULL)
        return BD_E_INVAL;
    fault_point("state intent");
    rc = wexec(st, NULL,
               "INSERT INTO intents (bottle, action, resource, created_at)"
               " VALUES (?1, ?2, ?3, ?4)",
               "sssI", bottle, action, resource, state_now());
    if (rc == 0)
        *ret_id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

int state_intent_done(struct state *st, int64_t id)
{
    int changes = 0;
    int rc = wexec(st, &changes,
                   "UPDATE intents SET state = 'done', done_at = ?2"
                   " WHERE id = ?1 AND state = 'pending'",
                   "II", id, state_now());

    if (rc == 0 && changes == 0)
        rc = BD_E_NOTFOUND;
    return rc;
}

struct intent_ctx {
    int (*fn)(const struct state_intent *i, void *arg);
    void *arg;
};

static int intent_row(sqlite3_stmt *stmt, void *ctx)
{
    struct intent_ctx *c = ctx;
    struct state_intent i = {
        .id = sqlite3_column_int64(stmt, 0),
        .bottle = col_text(stmt, 1),
        .action = col_text(stmt, 2),
        .resource = col_text(stmt, 3),
        .created_at = sqlite3_column_int64(stmt, 4),
    };
    return c->fn(&i, c->arg);
}

int state_intents_pending(struct state *st, int (*cb)(const struct state_intent *i, void *arg),
                          void *arg)
{
    struct intent_ctx c = {cb, arg};
    sqlite3_stmt *stmt = NULL;
    int rc = prep(st, &stmt,
                  "SELECT id, bottle, action, resource, created_at FROM intents"
                  " WHERE state = 'pending' ORDER BY id",
                  "");

    return rc < 0 ? rc : each_row(stmt, intent_row, &c);
}

/* ---- passes ------------------------------------------------------------ */

int state_pass_begin(struct state *st, const char *trigger, int64_t *ret_id)
{
    int rc = wexec(st, NULL, "INSERT INTO passes (started_at, trigger) VALUES (?1, ?2)", "Is",
                   state_now(), trigger);

    if (rc == 0)
        *ret_id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

int state_pass_end(struct state *st, int64_t id, int changes, int failures, const char *gc_blocked,
                   int64_t duration_ms)
{
    int n = 0;
    int rc = wexec(st, &n,
                   "UPDATE passes SET finished_at = ?2, changes = ?3, failures = ?4,"
                   " gc_blocked = ?5, duration_ms = ?6 WHERE id = ?1",
                   "IIiisI", id, state_now(), changes, failures, gc_blocked,
                   duration_ms < 0 ? (int64_t)0 : duration_ms);

    return rc == 0 && n == 0 ? BD_E_NOTFOUND : rc;
}

struct pass_ctx {
    int (*fn)(const struct state_pass *p, void *arg);
    void *arg;
};

static int pass_row(sqlite3_stmt *stmt, void *ctx)
{
    struct pass_ctx *c = ctx;
    struct state_pass p = {
        .id = sqlite3_column_int64(stmt, 0),
        .started_at = sqlite3_column_int64(stmt, 1),
        .finished_at = sqlite3_column_int64(stmt, 2),
        .changes = sqlite3_column_int(stmt, 3),
        .failures = sqlite3_column_int(stmt, 4),
        .gc_blocked = col_text(stmt, 5),
        .trigger = col_text(stmt, 6),
        .duration_ms = sqlite3_column_int64(stmt, 7),
    };
    return c->fn(&p, c->arg);
}

int state_passes_each(struct state *st, size_t limit,
                      int (*cb)(const struct state_pass *p, void *arg), void *arg)
{
    struct pass_ctx c = {cb, arg};
    sqlite3_stmt *stmt = NULL;
    int64_t lim = limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
    int rc = prep(st, &stmt,
                  "SELECT id, started_at, finished_at, changes, failures, gc_blocked, trigger,"
                  " duration_ms FROM"
                  " (SELECT * FROM passes ORDER BY id DESC LIMIT ?1) ORDER BY id",
                  "I", lim);

    return rc < 0 ? rc : each_row(stmt, pass_row, &c);
}

/* ---- the watcher's live view -------------------------------------------- */

static const char *const activity_names[] = {
    [STATE_ACT_IDLE] = "idle", [STATE_ACT_SETTLING] = "settling", [STATE_ACT_DEFERRED] = "deferred",
    [STATE_ACT_PASS] = "pass", [STATE_ACT_STOPPED] = "stopped",
};

const char *state_activity_name(enum state_activity a)
{
    if ((unsigned)a < sizeof(activity_names) / sizeof(activity_names[0]))
        return activity_names[a];
    return "unknown";
}

int state_watcher_put(struct state *st, const struct state_watcher *w)
{
    if (w->backend == NULL || w->dir == NULL || (unsigned)w->activity > STATE_ACT_STOPPED)
        return BD_E_INVAL;
    return wexec(st, NULL,
                 "INSERT OR REPLACE INTO watcher (id, pid, started_at, backend, dir, activity,"
                 " detail, since, next_resync, passes) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                 " ?9)",
                 "IIssssINI", w->pid, w->started_at, w->backend, w->dir,
                 state_activity_name(w->activity), w->detail, w->since, w->next_resync, w->passes);
}

int state_watcher_get(struct state *st, struct state_watcher *ret_w)
{
    sqlite3_stmt *stmt = NULL;
    int rc = prep(st, &stmt,
                  "SELECT pid, started_at, backend, dir, activity, detail, since, next_resync,"
                  " passes FROM watcher WHERE id = 1",
                  "");

    if (rc < 0)
        return rc;
    int s = sqlite3_step(stmt);
    if (s == SQLITE_ROW) {
        const char *act = col_text(stmt, 4);
        enum state_activity a = STATE_ACT_IDLE;
        for (size_t i = 0; act && i < sizeof(activity_names) / sizeof(activity_names[0]); i++)
            if (strcmp(act, activity_names[i]) == 0)
                a = (enum state_activity)i;
        *ret_w = (struct state_watcher){
            .pid = sqlite3_column_int64(stmt, 0),
            .started_at = sqlite3_column_int64(stmt, 1),
            .backend = col_dup(stmt, 2),
            .dir = col_dup(stmt, 3),
            .activity = a,
            .detail = col_dup(stmt, 5),
            .since = sqlite3_column_int64(stmt, 6),
            .next_resync = sqlite3_column_int64(stmt, 7),
            .passes = sqlite3_column_int64(stmt, 8),
        };
        rc = 0;
    } else {
        rc = s == SQLITE_DONE ? BD_E_NOTFOUND : state_sqlite_err(s);
    }
    sqlite3_finalize(stmt);
    return rc;
}

void state_watcher_release(struct state_watcher *w)
{
    free((char *)w->backend);
    free((char *)w->dir);
    free((char *)w->detail);
    memset(w, 0, sizeof(*w));
}

/* ---- delete approvals -------------------------------------------------- */

int state_approve_deletes(struct state *st, const char *bottle)
{
    if (bottle == NULL)
        return BD_E_INVAL;
    return wexec(st, NULL,
                 "INSERT INTO approvals (bottle, created_at) VALUES (?1, ?2)"
                 " ON CONFLICT (bottle) DO UPDATE SET created_at = excluded.created_at",
                 "sI", bottle, state_now());
}

int state_approval_take(struct state *st, const char *bottle, int *ret_approved)
{
    int changes = 0;
    int rc = wexec(st, &changes, "DELETE FROM approvals WHERE bottle = ?1", "s", bottle);

    if (rc == 0)
        *ret_approved = changes > 0;
    return rc;
}

static int count_row(sqlite3_stmt *stmt, void *ctx)
{
    *(int64_t *)ctx = sqlite3_column_int64(stmt, 0);
    return 0;
}

int state_approvals_count(struct state *st, int64_t *ret_n)
{
    sqlite3_stmt *stmt = NULL;
    int64_t n = 0;
    int rc = prep(st, &stmt, "SELECT count(*) FROM approvals", "");

    if (rc < 0)
        return rc;
    rc = each_row(stmt, count_row, &n);
    if (rc == 0)
        *ret_n = n;
    return rc;
}
