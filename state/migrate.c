/*
 * migrate.c - opening state.db and bringing its schema up to date.
 *
 * The schema version is PRAGMA user_version: 0 for a new file, N after
 * migration N (schemas/state/NNNN-*.sql, embedded at build time) was
 * applied.  Each migration runs in its own BEGIN IMMEDIATE transaction
 * together with the user_version bump, so a crash leaves the database at
 * the previous version and the next open applies it again.  Only
 * STATE_EXCLUSIVE migrates (it holds the lock, so there is one migrator);
 * the other modes refuse any version but the latest.  A database newer
 * than the binary is refused in every mode: an old binary must not guess
 * at tables it does not know.
 *
 * Connection settings: WAL (readers never block the writer and work while
 * it holds the lock), synchronous=NORMAL (a commit survives the process
 * being killed; a power loss may drop the last commits, which the engine
 * being the truth recovers from), foreign keys on, a busy timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "state_int.h"
#include "xalloc.h"

extern const int state_migration_count;
extern const char *const state_migration_name[];
extern const char *const state_migration_sql[];

int state_schema_latest(void)
{
    return state_migration_count;
}

int state_sqlite_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return BD_E_LOCKED;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return BD_E_INVAL;
    case SQLITE_NOTFOUND:
        return BD_E_NOTFOUND;
    case SQLITE_TOOBIG:
        return BD_E_TOO_BIG;
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return BD_E_IO;
    default:
        return BD_E_INTERNAL;
    }
}

static int exec_sql(struct state *st, const char *sql)
{
    return state_sqlite_err(sqlite3_exec(st->db, sql, NULL, NULL, NULL));
}

static int read_version(struct state *st, int *ret_version)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &stmt, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *ret_version = sqlite3_column_int(stmt, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    return state_sqlite_err(rc);
}

static int migrate(struct state *st, struct buf *why)
{
    for (int v = st->schema_version + 1; v <= state_migration_count; v++) {
        const char *name = state_migration_name[v - 1];
        char *bump = xasprintf("PRAGMA user_version = %d", v);
        int rc = exec_sql(st, "BEGIN IMMEDIATE");
        if (rc == 0)
            rc = exec_sql(st, state_migration_sql[v - 1]);
        if (rc == 0)
            rc = exec_sql(st, bump);
        if (rc == 0)
            rc = exec_sql(st, "COMMIT");
        free(bump);
        if (rc < 0) {
            if (why != NULL)
                (void)buf_appendf(why, "state database '%s/state.db': migration %s failed: %s",
                                  st->dir, name, sqlite3_errmsg(st->db));
            (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        st->schema_version = v;
    }
    return 0;
}

/* state.db, created empty and private if missing (SQLite would use the umask). */
static int precreate(struct state *st, struct buf *why)
{
    int fd = openat(st->dirfd, "state.db", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        if (why != NULL)
            (void)buf_appendf(why, "cannot create '%s/state.db': %s", st->dir, strerror(errno));
        return BD_E_IO;
    }
    close(fd);
    return 0;
}

int state_db_open(struct state *st, int busy_timeout_ms, struct buf *why)
{
    char *path = xasprintf("%s/state.db", st->dir);
    const char *open_path = path;
    struct stat sb;
    int flags = SQLITE_OPEN_NOFOLLOW;
    int rc = BD_E_IO;

    if (fstatat(st->dirfd, "state.db", &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT) {
            if (why != NULL)
                (void)buf_appendf(why, "cannot stat '%s': %s", path, strerror(errno));
            goto out;
        }
        if (st->mode == STATE_SHARED) {
            if (why != NULL)
                (void)buf_appendf(why, "no state database '%s' yet", path);
            rc = BD_E_NOTFOUND;
            goto out;
        }
        /* Nothing recorded yet reads as an empty database. */
        if (st->mode == STATE_RDONLY)
            open_path = ":memory:";
    }
    switch (st->mode) {
    case STATE_EXCLUSIVE:
        rc = precreate(st, why);
        if (rc < 0)
            goto out;
        flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        break;
    case STATE_SHARED:
        flags |= SQLITE_OPEN_READWRITE;
        break;
    case STATE_RDONLY:
        flags |= open_path == path ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
        break;
    }
    int src = sqlite3_open_v2(open_path, &st->db, flags, NULL);
    if (src != SQLITE_OK) {
        if (why != NULL)
            (void)buf_appendf(why, "cannot open state database '%s': %s", path,
                              st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(src));
        rc = state_sqlite_err(src);
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, busy_timeout_ms);
    if (st->mode != STATE_RDONLY) {
        rc = exec_sql(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
        if (rc < 0)
            goto sqlfail;
    }
    rc = exec_sql(st, "PRAGMA foreign_keys = ON");
    if (rc == 0)
        rc = read_version(st, &st->schema_version);
    if (rc < 0)
        goto sqlfail;
    if (st->schema_version > state_migration_count) {
        if (why != NULL)
            (void)buf_appendf(why,
                              "state database '%s' has schema version %d, newer than this "
                              "binary's %d: use a newer bottled",
                              path, st->schema_version, state_migration_count);
        rc = BD_E_VERSION;
        goto out;
    }
    if (st->schema_version < state_migration_count) {
        if (st->mode == STATE_EXCLUSIVE || open_path != path) {
            rc = migrate(st, why);
            if (rc < 0)
                goto out;
        } else {
            if (why != NULL)
                (void)buf_appendf(why,
                                  "state database '%s' has schema version %d, older than this "
                                  "binary's %d: a mutating command (reconcile, gc) migrates it",
                                  path, st->schema_version, state_migration_count);
            rc = BD_E_VERSION;
            goto out;
        }
    }
    rc = 0;
    goto out;
sqlfail:
    if (why != NULL)
        (void)buf_appendf(why, "state database '%s': %s", path, sqlite3_errmsg(st->db));
out:
    free(path);
    return rc;
}
