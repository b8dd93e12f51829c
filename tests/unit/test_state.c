/*
 * test_state.c - the state dir and its database (state/state.h), each case
 * in a fresh temporary directory: modes and ownership, identity that
 * survives losing the database, --instance adoption, the per-bottle CA,
 * migrations, the lock against a second process, and the records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "buf.h"
#include "err.h"
#include "state.h"
#include "xalloc.h"

struct fixture {
    char *tmp; /* mkdtemp */
    char *dir; /* tmp/nested/state: not there yet */
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    char tmpl[] = "/tmp/test_state.XXXXXX";

    assert_non_null(mkdtemp(tmpl));
    f->tmp = xstrdup(tmpl);
    f->dir = xasprintf("%s/nested/state", f->tmp);
    *state = f;
    return 0;
}

static void rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    rm_rf(f->tmp);
    free(f->tmp);
    free(f->dir);
    free(f);
    return 0;
}

static struct state *open_mode(const char *dir, enum state_mode mode, const char *instance)
{
    struct state_open_opts o = {.dir = dir, .mode = mode, .instance = instance};
    struct state *st = NULL;
    struct buf why;

    buf_init(&why, 4096);
    int rc = state_open(&o, &st, &why);
    if (rc != 0)
        print_error("state_open: %s: %s\n", bd_strerror(rc), buf_cstr(&why));
    assert_int_equal(rc, 0);
    assert_non_null(st);
    buf_release(&why);
    return st;
}

/* Opening that must fail with want; returns the message (caller frees). */
static char *open_fails(const char *dir, enum state_mode mode, const char *instance, int want)
{
    struct state_open_opts o = {.dir = dir, .mode = mode, .instance = instance};
    struct state *st = NULL;
    struct buf why;

    buf_init(&why, 4096);
    assert_int_equal(state_open(&o, &st, &why), want);
    assert_null(st);
    return buf_detach(&why, NULL);
}

static mode_t mode_of(const char *dir, const char *name)
{
    struct stat sb;
    char *p = xasprintf("%s/%s", dir, name);

    assert_int_equal(stat(p, &sb), 0);
    free(p);
    return sb.st_mode & 07777;
}

static char *slurp(const char *dir, const char *name)
{
    struct buf b;
    char *p = xasprintf("%s/%s", dir, name);

    buf_init(&b, 1 << 20);
    assert_int_equal(buf_read_file(&b, p), 0);
    free(p);
    return buf_detach(&b, NULL);
}

static void remove_db(const char *dir)
{
    static const char *const names[] = {"state.db", "state.db-wal", "state.db-shm"};

    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, names[i]);
        assert_true(unlink(p) == 0 || errno == ENOENT);
        free(p);
    }
}

struct events_seen {
    int n;
    char kinds[8][32];
    int64_t last_id;
};

static int collect_event(const struct state_event *e, void *arg)
{
    struct events_seen *s = arg;
    assert_true(e->id > s->last_id);
    assert_true(e->ts > 0);
    s->last_id = e->id;
    snprintf(s->kinds[s->n++], sizeof(s->kinds[0]), "%s:%s:%s", e->bottle ? e->bottle : "-",
             e->kind, e->detail ? e->detail : "-");
    return 0;
}

/* ---- the dir, its modes and identity ------------------------------------ */

static void test_create_and_modes(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);

    assert_string_equal(state_dir(st), f->dir);
    const char *id = state_instance_id(st);
    assert_int_equal(strlen(id), STATE_INSTANCE_ID_LEN);
    assert_int_equal(strspn(id, "0123456789abcdef"), STATE_INSTANCE_ID_LEN);
    assert_int_equal(state_schema_version(st), state_schema_latest());
    state_close(st);

    assert_int_equal(mode_of(f->dir, "."), 0700);
    assert_int_equal(mode_of(f->dir, ".."), 0700); /* created parents too */
    assert_int_equal(mode_of(f->dir, "instance-id"), 0600);
    assert_int_equal(mode_of(f->dir, "hmac.key"), 0600);
    assert_int_equal(mode_of(f->dir, "state.db"), 0600);
    assert_int_equal(mode_of(f->dir, "lock"), 0600);
    assert_int_equal(mode_of(f->dir, "keys"), 0700);
    assert_int_equal(mode_of(f->dir, "ca"), 0700);

    char *text = slurp(f->dir, "instance-id");
    assert_int_equal(strlen(text), STATE_INSTANCE_ID_LEN + 1);
    assert_int_equal(text[STATE_INSTANCE_ID_LEN], '\n');
    free(text);
    struct stat sb;
    char *p = xasprintf("%s/hmac.key", f->dir);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, STATE_HMAC_KEY_LEN);
    free(p);
    /* Nothing left behind by the atomic writes. */
    p = xasprintf("ls -A '%s' | grep -q tmp", f->dir);
    assert_int_not_equal(system(p), 0);
    free(p);
}

static void test_refuse_open_dir(void **state)
{
    struct fixture *f = *state;

    state_close(open_mode(f->dir, STATE_EXCLUSIVE, NULL));
    assert_int_equal(chmod(f->dir, 0755), 0);
    char *msg = open_fails(f->dir, STATE_EXCLUSIVE, NULL, BD_E_PERM);
    assert_non_null(strstr(msg, f->dir));
    assert_non_null(strstr(msg, "0755"));
    assert_non_null(strstr(msg, "group/world"));
    free(msg);
    msg = open_fails(f->dir, STATE_RDONLY, NULL, BD_E_PERM);
    free(msg);
    assert_int_equal(chmod(f->dir, 0710), 0);
    free(open_fails(f->dir, STATE_EXCLUSIVE, NULL, BD_E_PERM));

    /* A world-readable identity file is refused too. */
    assert_int_equal(chmod(f->dir, 0700), 0);
    char *p = xasprintf("%s/hmac.key", f->dir);
    assert_int_equal(chmod(p, 0644), 0);
    msg = open_fails(f->dir, STATE_EXCLUSIVE, NULL, BD_E_PERM);
    assert_non_null(strstr(msg, "hmac.key"));
    free(msg);
    assert_int_equal(chmod(p, 0600), 0);
    free(p);
    state_close(open_mode(f->dir, STATE_EXCLUSIVE, NULL));

    /* Not owned by the running user: only root can set that up. */
    if (geteuid() == 0) {
        assert_int_equal(chown(f->dir, 65534, 65534), 0);
        msg = open_fails(f->dir, STATE_EXCLUSIVE, NULL, BD_E_PERM);
        assert_non_null(strstr(msg, "owned by uid 65534"));
        assert_non_null(strstr(msg, f->dir));
        free(msg);
        assert_int_equal(chown(f->dir, 0, 0), 0);
    }
}

static void test_identity_stable(void **state)
{
    struct fixture *f = *state;
    char id[STATE_INSTANCE_ID_LEN + 1];
    uint8_t key[STATE_HMAC_KEY_LEN];
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);

    memcpy(id, state_instance_id(st), sizeof(id));
    memcpy(key, state_hmac_key(st), sizeof(key));
    state_close(st);

    st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    assert_string_equal(state_instance_id(st), id);
    assert_memory_equal(state_hmac_key(st), key, sizeof(key));
    state_close(st);
    st = open_mode(f->dir, STATE_RDONLY, NULL);
    assert_string_equal(state_instance_id(st), id);
    assert_memory_equal(state_hmac_key(st), key, sizeof(key));
    state_close(st);

    /* Two state dirs get different identities. */
    char *other = xasprintf("%s/other", f->tmp);
    st = open_mode(other, STATE_EXCLUSIVE, NULL);
    assert_string_not_equal(state_instance_id(st), id);
    assert_memory_not_equal(state_hmac_key(st), key, sizeof(key));
    state_close(st);
    free(other);
}

static void test_instance_adoption(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, "0123456789ab");

    assert_string_equal(state_instance_id(st), "0123456789ab");
    state_close(st);
    char *text = slurp(f->dir, "instance-id");
    assert_string_equal(text, "0123456789ab\n");
    free(text);

    st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    assert_string_equal(state_instance_id(st), "0123456789ab");
    state_close(st);
    st = open_mode(f->dir, STATE_RDONLY, "0123456789ab");
    state_close(st);

    char *msg = open_fails(f->dir, STATE_EXCLUSIVE, "ba9876543210", BD_E_MISMATCH);
    assert_non_null(strstr(msg, "ba9876543210"));
    assert_non_null(strstr(msg, "0123456789ab"));
    free(msg);
    free(open_fails(f->dir, STATE_RDONLY, "ba9876543210", BD_E_MISMATCH));
    /* Not 12 lowercase hex. */
    free(open_fails(f->dir, STATE_EXCLUSIVE, "0123456789AB", BD_E_INVAL));
    free(open_fails(f->dir, STATE_EXCLUSIVE, "0123", BD_E_INVAL));
    text = slurp(f->dir, "instance-id");
    assert_string_equal(text, "0123456789ab\n");
    free(text);
}

static void test_rdonly_creates_nothing(void **state)
{
    struct fixture *f = *state;
    struct stat sb;

    free(open_fails(f->dir, STATE_RDONLY, NULL, BD_E_NOTFOUND));
    free(open_fails(f->dir, STATE_SHARED, NULL, BD_E_NOTFOUND));
    assert_int_not_equal(stat(f->dir, &sb), 0);

    /* Identity but no database yet: reads as empty, writes are refused. */
    state_close(open_mode(f->dir, STATE_EXCLUSIVE, NULL));
    remove_db(f->dir);
    struct state *st = open_mode(f->dir, STATE_RDONLY, NULL);
    struct state_bottle b;
    assert_int_equal(state_bottle_get(st, "x", &b), BD_E_NOTFOUND);
    assert_int_equal(state_event_add(st, NULL, "k", NULL), BD_E_INVAL);
    assert_int_equal(state_begin(st), BD_E_INVAL);
    state_close(st);
    char *p = xasprintf("%s/state.db", f->dir);
    assert_int_not_equal(stat(p, &sb), 0);
    free(p);
}

static void test_default_dir(void **state)
{
    (void)state;
    char *d = NULL;
    char *old_xdg = getenv("XDG_STATE_HOME") ? xstrdup(getenv("XDG_STATE_HOME")) : NULL;
    char *old_home = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;

    setenv("XDG_STATE_HOME", "/x/state", 1);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(state_default_dir(&d), 0);
    assert_string_equal(d, geteuid() == 0 ? "/var/lib/bottled" : "/x/state/bottled");
    free(d);
    setenv("XDG_STATE_HOME", "relative", 1);
    assert_int_equal(state_default_dir(&d), 0);
    assert_string_equal(d, geteuid() == 0 ? "/var/lib/bottled" : "/home/u/.local/state/bottled");
    free(d);
    if (old_xdg != NULL)
        setenv("XDG_STATE_HOME", old_xdg, 1);
    else
        unsetenv("XDG_STATE_HOME");
    if (old_home != NULL)
        setenv("HOME", old_home, 1);
    free(old_xdg);
    free(old_home);
}

/* ---- the per-bottle CA -------------------------------------------------- */

static void check_ca(const char *cert_pem, const char *key_pem)
{
    BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);

    assert_non_null(x);
    assert_non_null(key);
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    assert_int_equal(X509_check_ca(x), 1);
    assert_true(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
    assert_int_equal(X509_check_private_key(x, key), 1);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    /* Self-signed, valid now. */
    assert_int_equal(X509_verify(x, key), 1);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
    assert_true(X509_cmp_current_time(X509_get0_notAfter(x)) > 0);
    EVP_PKEY_free(key);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
}

static void test_bottle_ca(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    char *cert = NULL, *key = NULL, *cert2 = NULL, *key2 = NULL, *cert3 = NULL, *key3 = NULL;

    assert_int_equal(state_bottle_ca(st, "web", &cert, &key), 0);
    check_ca(cert, key);
    assert_int_equal(mode_of(f->dir, "ca/web"), 0700);
    assert_int_equal(mode_of(f->dir, "ca/web/cert.pem"), 0600);
    assert_int_equal(mode_of(f->dir, "ca/web/key.pem"), 0600);

    /* Minted once: the same pair again. */
    assert_int_equal(state_bottle_ca(st, "web", &cert2, &key2), 0);
    assert_string_equal(cert, cert2);
    assert_string_equal(key, key2);
    /* Another bottle, another CA. */
    assert_int_equal(state_bottle_ca(st, "api", &cert3, &key3), 0);
    assert_string_not_equal(cert, cert3);
    free(cert2);
    free(key2);
    free(cert3);
    free(key3);

    assert_int_equal(state_bottle_ca(st, "../web", &cert2, &key2), BD_E_INVAL);
    assert_int_equal(state_bottle_ca(st, ".hidden", &cert2, &key2), BD_E_INVAL);
    assert_int_equal(state_bottle_ca(st, "", &cert2, &key2), BD_E_INVAL);
    state_close(st);

    /* Read-only modes read it but never mint. */
    st = open_mode(f->dir, STATE_RDONLY, NULL);
    assert_int_equal(state_bottle_ca(st, "web", &cert2, &key2), 0);
    assert_string_equal(cert, cert2);
    free(cert2);
    free(key2);
    assert_int_equal(state_bottle_ca(st, "new", &cert2, &key2), BD_E_NOTFOUND);
    state_close(st);

    /* Removal, then a fresh mint. */
    st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    assert_int_equal(state_bottle_ca_remove(st, "web"), 0);
    assert_int_equal(state_bottle_ca_remove(st, "web"), 0);
    assert_int_equal(state_bottle_ca(st, "web", &cert2, &key2), 0);
    assert_string_not_equal(cert, cert2);
    free(cert2);
    free(key2);
    state_close(st);
    free(cert);
    free(key);
}

/* ---- migrations --------------------------------------------------------- */

static void set_user_version(const char *dir, int v)
{
    sqlite3 *db = NULL;
    char *p = xasprintf("%s/state.db", dir);
    char *sql = xasprintf("PRAGMA user_version = %d", v);

    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    free(sql);
    free(p);
}

static void test_migrations(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);

    assert_true(state_schema_latest() >= 1);
    assert_int_equal(state_schema_version(st), state_schema_latest());
    assert_int_equal(state_event_add(st, "b", "created", "x"), 0);
    state_close(st);

    /* Idempotent reopen: same version, data kept. */
    st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    assert_int_equal(state_schema_version(st), state_schema_latest());
    state_close(st);
    st = open_mode(f->dir, STATE_RDONLY, NULL);
    struct events_seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(state_schema_version(st), state_schema_latest());
    assert_int_equal(state_events_each(st, NULL, 0, collect_event, &s), 0);
    assert_int_equal(s.n, 1);
    state_close(st);

    /* WAL. */
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    char *p = xasprintf("%s/state.db", f->dir);
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    free(p);

    /* A database from the future is refused in every mode. */
    set_user_version(f->dir, state_schema_latest() + 1);
    char *msg = open_fails(f->dir, STATE_EXCLUSIVE, NULL, BD_E_VERSION);
    assert_non_null(strstr(msg, "newer"));
    free(msg);
    free(open_fails(f->dir, STATE_RDONLY, NULL, BD_E_VERSION));
    free(open_fails(f->dir, STATE_SHARED, NULL, BD_E_VERSION));

    /* An older one is migrated by the exclusive mode only. */
    remove_db(f->dir);
    set_user_version(f->dir, 0); /* an empty file at version 0 */
    msg = open_fails(f->dir, STATE_RDONLY, NULL, BD_E_VERSION);
    assert_non_null(strstr(msg, "older"));
    free(msg);
    st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    assert_int_equal(state_schema_version(st), state_schema_latest());
    state_close(st);
}

static void test_delete_db_keeps_identity(void **state)
{
    struct fixture *f = *state;
    char id[STATE_INSTANCE_ID_LEN + 1];
    uint8_t key[STATE_HMAC_KEY_LEN];
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    struct state_bottle b = {.name = "web", .phase = STATE_PHASE_READY};

    assert_int_equal(state_bottle_put(st, &b), 0);
    memcpy(id, state_instance_id(st), sizeof(id));
    memcpy(key, state_hmac_key(st), sizeof(key));
    state_close(st);

    remove_db(f->dir);
    st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    assert_string_equal(state_instance_id(st), id);
    assert_memory_equal(state_hmac_key(st), key, sizeof(key));
    assert_int_equal(state_schema_version(st), state_schema_latest());
    assert_int_equal(state_bottle_get(st, "web", &b), BD_E_NOTFOUND);
    state_close(st);
}

/* ---- the lock ----------------------------------------------------------- */

/* The child reports failures through its exit status. */
#define CHILD_CHECK(cond, code)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            _exit(code);                                                                           \
    } while (0)

static void lock_child(const char *dir, pid_t parent)
{
    struct state_open_opts o = {.dir = dir, .mode = STATE_EXCLUSIVE};
    struct state *st = NULL;
    struct buf why;
    char want[64];

    buf_init(&why, 4096);
    CHILD_CHECK(state_open(&o, &st, &why) == BD_E_LOCKED, 10);
    CHILD_CHECK(st == NULL, 11);
    snprintf(want, sizeof(want), "pid %ld, started ", (long)parent);
    CHILD_CHECK(strstr(buf_cstr(&why), want) != NULL, 12);
    CHILD_CHECK(strstr(buf_cstr(&why), dir) != NULL, 13);
    CHILD_CHECK(strstr(buf_cstr(&why), "Z") != NULL, 14);
    buf_release(&why);

    /* Read-only works meanwhile and sees what the holder committed only. */
    o.mode = STATE_RDONLY;
    CHILD_CHECK(state_open(&o, &st, NULL) == 0, 20);
    struct state_bottle b;
    CHILD_CHECK(state_bottle_get(st, "committed", &b) == 0, 21);
    CHILD_CHECK(b.phase == STATE_PHASE_READY, 22);
    state_bottle_release(&b);
    CHILD_CHECK(state_bottle_get(st, "uncommitted", &b) == BD_E_NOTFOUND, 23);
    state_close(st);
    _exit(0);
}

/* approve-deletes writes while the lock is held (no transaction open). */
static void approve_child(const char *dir, pid_t parent)
{
    (void)parent;
    struct state_open_opts o = {.dir = dir, .mode = STATE_SHARED};
    struct state *st = NULL;

    CHILD_CHECK(state_open(&o, &st, NULL) == 0, 30);
    CHILD_CHECK(state_approve_deletes(st, "committed") == 0, 31);
    state_close(st);
    _exit(0);
}

static void run_child(void (*fn)(const char *dir, pid_t parent), const char *dir)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    int status = 0;

    assert_true(pid >= 0);
    if (pid == 0)
        fn(dir, parent);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_lock(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    struct state_bottle b = {.name = "committed", .phase = STATE_PHASE_READY};

    assert_int_equal(state_bottle_put(st, &b), 0);
    assert_int_equal(state_begin(st), 0);
    b.name = "uncommitted";
    assert_int_equal(state_bottle_put(st, &b), 0);

    char *text = slurp(f->dir, "lock");
    char *want = xasprintf("pid %ld\nstarted ", (long)getpid());
    assert_true(strncmp(text, want, strlen(want)) == 0);
    free(want);
    free(text);

    run_child(lock_child, f->dir);
    assert_int_equal(state_commit(st), 0);
    run_child(approve_child, f->dir);
    int approved = 0;
    assert_int_equal(state_approval_take(st, "committed", &approved), 0);
    assert_int_equal(approved, 1);
    assert_int_equal(state_approval_take(st, "committed", &approved), 0);
    assert_int_equal(approved, 0);
    state_close(st);

    /* Released on close: the next exclusive open gets it, and the holder line is gone. */
    text = slurp(f->dir, "lock");
    assert_string_equal(text, "");
    free(text);
    st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    state_close(st);
}

/* ---- records ------------------------------------------------------------ */

static int count_intent(const struct state_intent *i, void *arg)
{
    int64_t *ids = arg;
    ids[++ids[0]] = i->id;
    assert_string_equal(i->bottle, "web");
    assert_true(i->created_at > 0);
    return 0;
}

static void test_intents(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    int64_t a = 0, b = 0, c = 0, ids[8] = {0};

    assert_int_equal(state_intent_begin(st, "web", "create", "bottle-web-agent", &a), 0);
    assert_int_equal(state_intent_begin(st, "web", "remove", "bottle-web-proxy", &b), 0);
    assert_true(b > a);
    assert_int_equal(state_intent_done(st, a), 0);
    assert_int_equal(state_intent_done(st, a), BD_E_NOTFOUND);
    assert_int_equal(state_intent_done(st, 9999), BD_E_NOTFOUND);

    /* Never inside a transaction: it would not be durable before the side effect. */
    assert_int_equal(state_begin(st), 0);
    assert_int_equal(state_intent_begin(st, "web", "create", "x", &c), BD_E_INVAL);
    state_rollback(st);
    state_close(st);

    /* The next run sees what was left unfinished. */
    st = open_mode(f->dir, STATE_RDONLY, NULL);
    assert_int_equal(state_intents_pending(st, count_intent, ids), 0);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], b);
    state_close(st);
}

static void test_events(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    struct events_seen s;

    assert_int_equal(state_event_add(st, "web", "created", "agent"), 0);
    assert_int_equal(state_event_add(st, NULL, "pass", NULL), 0);
    assert_int_equal(state_event_add(st, "api", "failed", "image missing"), 0);
    assert_int_equal(state_event_add(st, "web", "ready", NULL), 0);

    memset(&s, 0, sizeof(s));
    assert_int_equal(state_events_each(st, NULL, 0, collect_event, &s), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.kinds[0], "web:created:agent");
    assert_string_equal(s.kinds[1], "-:pass:-");
    assert_string_equal(s.kinds[3], "web:ready:-");

    memset(&s, 0, sizeof(s));
    assert_int_equal(state_events_each(st, "web", 0, collect_event, &s), 0);
    assert_int_equal(s.n, 2);

    memset(&s, 0, sizeof(s));
    assert_int_equal(state_events_each(st, NULL, 2, collect_event, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.kinds[0], "api:failed:image missing");
    assert_string_equal(s.kinds[1], "web:ready:-");
    state_close(st);
}

static int collect_repo(const char *forge, const char *api_root, const char *repo, void *arg)
{
    struct buf *b = arg;
    assert_int_equal(buf_appendf(b, "%s|%s|%s\n", forge, api_root, repo), 0);
    return 0;
}

static void test_repos_used(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    struct buf b;

    assert_int_equal(state_repo_used(st, "gitea", "https://git.example/api/v1", "o/r1"), 0);
    assert_int_equal(state_repo_used(st, "gitea", "https://git.example/api/v1", "o/r1"), 0);
    assert_int_equal(state_repo_used(st, "github", "https://api.github.com", "o/r2"), 0);
    assert_int_equal(state_repo_used(st, "gitea", "x", "a\tb"), BD_E_INVAL);
    assert_int_equal(state_repo_used(st, "gitea", "x", "a\nb"), BD_E_INVAL);
    assert_int_equal(state_repo_used(st, "", "x", "y"), BD_E_INVAL);
    state_close(st);

    char *text = slurp(f->dir, "repos-used");
    assert_string_equal(text, "gitea\thttps://git.example/api/v1\to/r1\n"
                              "github\thttps://api.github.com\to/r2\n");
    free(text);
    assert_int_equal(mode_of(f->dir, "repos-used"), 0600);

    /* A lost database still knows them, without duplicates. */
    remove_db(f->dir);
    st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    buf_init(&b, 4096);
    assert_int_equal(state_repos_used_each(st, collect_repo, &b), 0);
    assert_string_equal(buf_cstr(&b), "gitea|https://git.example/api/v1|o/r1\n"
                                      "github|https://api.github.com|o/r2\n");
    /* Recording one again appends it again (harmless), listing stays unique. */
    assert_int_equal(state_repo_used(st, "gitea", "https://git.example/api/v1", "o/r1"), 0);
    assert_int_equal(state_repo_used(st, "gitea", "https://git.example/api/v1", "o/r3"), 0);
    buf_reset(&b);
    assert_int_equal(state_repos_used_each(st, collect_repo, &b), 0);
    assert_string_equal(buf_cstr(&b), "gitea|https://git.example/api/v1|o/r1\n"
                                      "gitea|https://git.example/api/v1|o/r3\n"
                                      "github|https://api.github.com|o/r2\n");
    buf_release(&b);
    state_close(st);
}

static int collect_resource(const struct state_resource *r, void *arg)
{
    struct buf *b = arg;
    assert_int_equal(buf_appendf(b, "%s/%s=%s:%s;", r->bottle, r->role, r->name,
                                 r->engine_id ? r->engine_id : "-"),
                     0);
    return 0;
}

static int collect_key(const struct state_deploy_key *k, void *arg)
{
    struct buf *b = arg;
    assert_int_equal(buf_appendf(b, "%s %s %s %s %s;", k->bottle, k->repo,
                                 k->key_id ? k->key_id : "-", k->fingerprint,
                                 state_key_state_name(k->state)),
                     0);
    return 0;
}

static int stop_at_first(const struct state_bottle *b, void *arg)
{
    *(int *)arg += 1;
    return 42;
}

static int collect_pass(const struct state_pass *p, void *arg)
{
    struct buf *b = arg;
    assert_int_equal(buf_appendf(b, "%s/%d/%d/%s/%d/%lld;", p->trigger ? p->trigger : "-",
                                 p->changes, p->failures, p->gc_blocked ? p->gc_blocked : "-",
                                 p->finished_at > 0, (long long)p->duration_ms),
                     0);
    return 0;
}

static int collect_manifest(const struct state_manifest *m, void *arg)
{
    struct buf *b = arg;
    assert_int_equal(buf_appendf(b, "%s %s %s;", m->path, m->bottle ? m->bottle : "-",
                                 m->parse_error ? m->parse_error : "-"),
                     0);
    return 0;
}

static void test_records(void **state)
{
    struct fixture *f = *state;
    struct state *st = open_mode(f->dir, STATE_EXCLUSIVE, NULL);
    struct state_bottle b = {
        .name = "web",
        .spec_hash = "h1",
        .manifest_hash = "m1",
        .phase = STATE_PHASE_RECONCILING,
        .last_error = "image 'x' not found",
        .failures = 2,
        .next_retry = 1234,
        .last_pass_at = 5000,
        .last_pass_ms = 812,
    };
    struct state_bottle got;
    struct buf out;

    buf_init(&out, 4096);
    assert_int_equal(state_bottle_put(st, &b), 0);
    assert_int_equal(state_bottle_get(st, "web", &got), 0);
    assert_int_equal(got.generation, 1);
    assert_string_equal(got.spec_hash, "h1");
    assert_null(got.config_hash);
    assert_int_equal(got.phase, STATE_PHASE_RECONCILING);
    assert_string_equal(got.last_error, "image 'x' not found");
    assert_int_equal(got.failures, 2);
    assert_int_equal(got.next_retry, 1234);
    assert_true(got.updated_at > 0);
    assert_int_equal(got.last_pass_at, 5000);
    assert_int_equal(got.last_pass_ms, 812);
    state_bottle_release(&got);

    /* Same spec: same generation; a new spec: the next one. */
    b.phase = STATE_PHASE_READY;
    b.last_error = NULL;
    b.next_retry = 0;
    assert_int_equal(state_bottle_put(st, &b), 0);
    b.spec_hash = "h2";
    assert_int_equal(state_bottle_put(st, &b), 0);
    assert_int_equal(state_bottle_get(st, "web", &got), 0);
    assert_int_equal(got.generation, 2);
    assert_int_equal(got.phase, STATE_PHASE_READY);
    assert_null(got.last_error);
    assert_int_equal(got.next_retry, 0);
    state_bottle_release(&got);

    /* Resources; a resource creates its bottle's row. */
    struct state_resource r = {.bottle = "web", .role = "agent", .name = "bottle-web-agent"};
    assert_int_equal(state_resource_put(st, &r), 0);
    r.engine_id = "abc123";
    assert_int_equal(state_resource_put(st, &r), 0);
    r = (struct state_resource){.bottle = "api", .role = "int", .name = "bottle-api-int"};
    assert_int_equal(state_resource_put(st, &r), 0);
    assert_int_equal(state_resources_each(st, NULL, collect_resource, &out), 0);
    assert_string_equal(buf_cstr(&out),
                        "api/int=bottle-api-int:-;web/agent=bottle-web-agent:abc123;");
    buf_reset(&out);
    assert_int_equal(state_resources_each(st, "api", collect_resource, &out), 0);
    assert_string_equal(buf_cstr(&out), "api/int=bottle-api-int:-;");
    buf_reset(&out);
    assert_int_equal(state_bottle_get(st, "api", &got), 0);
    assert_int_equal(got.generation, 0);
    state_bottle_release(&got);

    int n = 0;
    assert_int_equal(state_bottles_each(st, stop_at_first, &n), 42);
    assert_int_equal(n, 1);

    /* Forgetting a bottle forgets its resources. */
    assert_int_equal(state_bottle_forget(st, "api"), 0);
    assert_int_equal(state_resources_each(st, NULL, collect_resource, &out), 0);
    assert_string_equal(buf_cstr(&out), "web/agent=bottle-web-agent:abc123;");
    buf_reset(&out);
    assert_int_equal(state_resource_forget(st, "web", "agent"), 0);
    assert_int_equal(state_resources_each(st, NULL, collect_resource, &out), 0);
    assert_string_equal(buf_cstr(&out), "");

    /* Deploy keys through their states. */
    struct state_deploy_key k = {.bottle = "web",
                                 .forge = "gitea",
                                 .repo = "o/r",
                                 .fingerprint = "SHA256:abc",
                                 .state = STATE_KEY_INTENT};
    assert_int_equal(state_deploy_key_put(st, &k), 0);
    k.key_id = "17";
    k.state = STATE_KEY_REGISTERED;
    assert_int_equal(state_deploy_key_put(st, &k), 0);
    assert_int_equal(state_deploy_keys_each(st, "web", collect_key, &out), 0);
    assert_string_equal(buf_cstr(&out), "web o/r 17 SHA256:abc registered;");
    buf_reset(&out);
    assert_int_equal(state_deploy_key_forget(st, "web", "gitea", "o/r"), 0);
    assert_int_equal(state_deploy_keys_each(st, NULL, collect_key, &out), 0);
    assert_string_equal(buf_cstr(&out), "");

    /* Manifests seen. */
    struct state_manifest m = {.path = "/b/web.md", .content_hash = "c1", .bottle = "web"};
    assert_int_equal(state_manifest_put(st, &m), 0);
    m = (struct state_manifest){
        .path = "/b/bad.md", .content_hash = "c2", .parse_error = "bad.md:1:1: oops"};
    assert_int_equal(state_manifest_put(st, &m), 0);
    assert_int_equal(state_manifests_each(st, collect_manifest, &out), 0);
    assert_string_equal(buf_cstr(&out), "/b/bad.md - bad.md:1:1: oops;/b/web.md web -;");
    buf_reset(&out);
    assert_int_equal(state_manifest_forget(st, "/b/bad.md"), 0);

    /* Passes. */
    int64_t p1 = 0, p2 = 0;
    assert_int_equal(state_pass_begin(st, "reconcile", &p1), 0);
    assert_int_equal(state_pass_end(st, p1, 3, 0, NULL, 1234), 0);
    assert_int_equal(state_pass_begin(st, NULL, &p2), 0);
    assert_int_equal(state_passes_each(st, 10, collect_pass, &out), 0);
    assert_string_equal(buf_cstr(&out), "reconcile/3/0/-/1/1234;-/0/0/-/0/0;");
    buf_reset(&out);
    assert_int_equal(state_pass_end(st, p2, 0, 1, "/b/bad.md", 7), 0);
    assert_int_equal(state_pass_end(st, 999, 0, 0, NULL, 0), BD_E_NOTFOUND);
    assert_int_equal(state_passes_each(st, 10, collect_pass, &out), 0);
    assert_string_equal(buf_cstr(&out), "reconcile/3/0/-/1/1234;-/0/1//b/bad.md/1/7;");
    buf_reset(&out);

    /* The watcher's row: none yet, then written and rewritten. */
    struct state_watcher wr = {0};
    assert_int_equal(state_watcher_get(st, &wr), BD_E_NOTFOUND);
    struct state_watcher w1 = {.pid = 42,
                               .started_at = 1000,
                               .backend = "inotify",
                               .dir = "/m",
                               .activity = STATE_ACT_PASS,
                               .detail = "change",
                               .since = 1001,
                               .next_resync = 1060,
                               .passes = 3};
    assert_int_equal(state_watcher_put(st, &w1), 0);
    w1.activity = STATE_ACT_IDLE;
    w1.detail = NULL;
    w1.passes = 4;
    assert_int_equal(state_watcher_put(st, &w1), 0);
    assert_int_equal(state_watcher_get(st, &wr), 0);
    assert_int_equal(wr.pid, 42);
    assert_string_equal(wr.backend, "inotify");
    assert_string_equal(wr.dir, "/m");
    assert_int_equal(wr.activity, STATE_ACT_IDLE);
    assert_null(wr.detail);
    assert_int_equal(wr.next_resync, 1060);
    assert_int_equal(wr.passes, 4);
    state_watcher_release(&wr);
    w1.activity = (enum state_activity)99;
    assert_int_equal(state_watcher_put(st, &w1), BD_E_INVAL);
    assert_string_equal(state_activity_name(STATE_ACT_DEFERRED), "deferred");

    /* A transaction rolled back leaves nothing. */
    assert_int_equal(state_begin(st), 0);
    assert_int_equal(state_begin(st), BD_E_INVAL);
    assert_int_equal(state_event_add(st, "web", "gone", NULL), 0);
    state_rollback(st);
    struct events_seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(state_events_each(st, NULL, 0, collect_event, &s), 0);
    assert_int_equal(s.n, 0);

    /* Phase names. */
    enum state_phase ph;
    assert_int_equal(state_phase_parse("Deleting", &ph), 0);
    assert_int_equal(ph, STATE_PHASE_DELETING);
    assert_int_equal(state_phase_parse("deleting", &ph), BD_E_INVAL);
    assert_string_equal(state_phase_name(STATE_PHASE_DEGRADED), "Degraded");

    buf_release(&out);
    state_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_open_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_adoption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_creates_nothing, setup, teardown),
        cmocka_unit_test(test_default_dir),
        cmocka_unit_test_setup_teardown(test_bottle_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_db_keeps_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repos_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
