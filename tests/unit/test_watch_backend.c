/*
 * test_watch_backend.c - reconciler/watch_backend.c: the hint list, the
 * .git rule, open's errors, the backend list, ROOT_GONE staying reported,
 * and the inotify backend's INCOMPLETE (depth and directory caps).  The
 * event cases themselves are shell tests (tests/watch/).
 *
 * Every test works in a fresh mkdtemp() directory and removes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "scan.h"
#include "watch_backend.h"
#include "xalloc.h"

struct fixture {
    char *dir;                /* real path of the mkdtemp directory */
    struct watch_backend *wb; /* open while a test runs: teardown closes it
                               * after a failed assertion (and so removes
                               * the fswatch probe directory) */
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    char *templ = xasprintf("%s/test_watch.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(templ)) {
        free(templ);
        free(f);
        return -1;
    }
    f->dir = realpath(templ, NULL);
    free(templ);
    *state = f;
    return f->dir ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    watch_backend_close(f->wb);
    nftw(f->dir, rm_one, 64, FTW_PHYS | FTW_DEPTH);
    free(f->dir);
    free(f);
    return 0;
}

static char *sub(const struct fixture *f, const char *rel)
{
    return xasprintf("%s/%s", f->dir, rel);
}

static void put(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x\n", 2), 2);
    close(fd);
}

/* Polls and drains until a batch has flags, or timeout_ms passes. */
static void drain_within(struct watch_backend *wb, int timeout_ms, struct watch_hints *h)
{
    memset(h, 0, sizeof(*h));
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        struct pollfd p = {.fd = watch_backend_fd(wb), .events = POLLIN};
        if (poll(&p, 1, 20) > 0) {
            assert_int_equal(watch_backend_drain(wb, h), 0);
            if (h->flags)
                return;
            watch_hints_release(h);
        }
    }
}

/* ---- pure parts -------------------------------------------------------- */

static void test_hints_add(void **state)
{
    (void)state;
    struct watch_hints h = {0};

    watch_hints_add(&h, WATCH_HINT_CHANGED, "a.md", 4);
    watch_hints_add(&h, WATCH_HINT_CHANGED, "a.md", 4);
    watch_hints_add(&h, 0, "b.mdXXX", 4); /* only rel_len bytes count */
    watch_hints_add(&h, WATCH_HINT_OVERFLOW, "", 0);
    assert_int_equal(h.flags, WATCH_HINT_CHANGED | WATCH_HINT_OVERFLOW);
    assert_int_equal(h.n_paths, 3);
    assert_string_equal(h.paths[0], "a.md");
    assert_string_equal(h.paths[1], "b.md");
    assert_string_equal(h.paths[2], ".");

    for (int i = 0; i < 2 * WATCH_HINT_MAX_PATHS; i++) {
        char p[16];
        int n = snprintf(p, sizeof(p), "f%d", i);
        watch_hints_add(&h, WATCH_HINT_CHANGED, p, (size_t)n);
    }
    assert_int_equal(h.n_paths, WATCH_HINT_MAX_PATHS);
    assert_true(h.flags & WATCH_HINT_TRUNCATED);

    struct watch_hints dst = {0};
    watch_hints_add(&dst, 0, "a.md", 4);
    watch_hints_merge(&dst, &h);
    assert_int_equal(h.n_paths, 0);
    assert_int_equal(h.flags, 0);
    assert_int_equal(dst.n_paths, WATCH_HINT_MAX_PATHS);
    assert_true(dst.flags & WATCH_HINT_TRUNCATED);
    assert_true(dst.flags & WATCH_HINT_OVERFLOW);
    watch_hints_release(&dst);
    watch_hints_release(&h);
}

static void test_skip_dir(void **state)
{
    (void)state;
    assert_true(watch_skip_dir(".git"));
    assert_true(watch_skip_dir("team/.git"));
    assert_false(watch_skip_dir(""));
    assert_false(watch_skip_dir(".github"));
    assert_false(watch_skip_dir(".hidden"));
    assert_false(watch_skip_dir("skills/x/.git"));
    assert_false(watch_skip_dir("skills/.git"));
    assert_true(watch_skip_dir("team/skills/x/.git")); /* only the top-level skills/ */
}

static void test_compiled(void **state)
{
    (void)state;
    size_t n = 0;
    while (watch_backend_compiled(n))
        n++;
#if BOTTLED_HAVE_FSWATCH
    assert_int_equal(n, 2);
    assert_string_equal(watch_backend_compiled(0), "fswatch");
#else
    assert_int_equal(n, 1);
#endif
    assert_string_equal(watch_backend_compiled(n - 1), "inotify");
}

/* ---- open -------------------------------------------------------------- */

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    struct watch_backend *wb = (struct watch_backend *)&wb; /* must stay untouched */
    struct watch_backend *const sentinel = wb;
    char err[256];
    char *missing = sub(f, "missing");
    char *file = sub(f, "file.md");
    char *dangling = sub(f, "dangling");
    put(file);
    assert_int_equal(symlink("nowhere", dangling), 0);

    for (size_t i = 0; watch_backend_compiled(i); i++) {
        const char *b = watch_backend_compiled(i);
        assert_int_equal(watch_backend_open(b, missing, &wb, err, sizeof(err)), BD_E_NOTFOUND);
        assert_non_null(strstr(err, missing));
        assert_int_equal(watch_backend_open(b, dangling, &wb, err, sizeof(err)), BD_E_NOTFOUND);
        assert_int_equal(watch_backend_open(b, file, &wb, err, sizeof(err)), BD_E_INVAL);
        assert_non_null(strstr(err, "not a directory"));
    }
    assert_int_equal(watch_backend_open("kqueue", f->dir, &wb, err, sizeof(err)), BD_E_INVAL);
    assert_string_equal(err, "unknown watch backend 'kqueue'");
    assert_int_equal(watch_backend_open(NULL, missing, &wb, err, sizeof(err)), BD_E_NOTFOUND);
    assert_ptr_equal(wb, sentinel);
    assert_int_equal(watch_backend_drain(NULL, NULL), BD_E_INVAL);
    watch_backend_close(NULL);
    free(missing);
    free(file);
    free(dangling);
}

static void test_open_each(void **state)
{
    struct fixture *f = *state;
    char err[256];
    char *link = sub(f, "link");
    assert_int_equal(symlink(".", link), 0);

    for (size_t i = 0; watch_backend_compiled(i); i++) {
        struct watch_backend *wb = NULL;
        assert_int_equal(watch_backend_open(watch_backend_compiled(i), link, &wb, err, sizeof(err)),
                         0);
        f->wb = wb;
        assert_string_equal(watch_backend_name(wb), watch_backend_compiled(i));
        assert_string_equal(watch_backend_real_path(wb), f->dir);
        /* Nothing happened: a drain does not wait and reports nothing. */
        struct watch_hints h;
        assert_int_equal(watch_backend_drain(wb, &h), 0);
        assert_int_equal(h.flags, 0);
        watch_hints_release(&h);
        watch_backend_close(wb);
        f->wb = NULL;
    }
    struct watch_backend *wb = NULL;
    assert_int_equal(watch_backend_open(NULL, f->dir, &wb, err, sizeof(err)), 0);
    f->wb = wb;
    assert_string_equal(watch_backend_name(wb), watch_backend_compiled(0));
    watch_backend_close(wb);
    f->wb = NULL;
    free(link);
}

/* ---- ROOT_GONE stays ---------------------------------------------------- */

static void test_root_gone_is_sticky(void **state)
{
    struct fixture *f = *state;
    char err[256];

    for (size_t i = 0; watch_backend_compiled(i); i++) {
        char *d = sub(f, "d");
        char *away = sub(f, "away");
        assert_int_equal(mkdir(d, 0755), 0);
        struct watch_backend *wb = NULL;
        assert_int_equal(watch_backend_open(watch_backend_compiled(i), d, &wb, err, sizeof(err)),
                         0);
        f->wb = wb;

        assert_int_equal(rename(d, away), 0);
        struct watch_hints h;
        drain_within(wb, 2000, &h);
        assert_true(h.flags & WATCH_HINT_ROOT_GONE);
        assert_true(h.flags & WATCH_HINT_CHANGED);
        watch_hints_release(&h);

        /* Whatever comes next still says the root is gone. */
        watch_backend_inject_overflow(wb);
        drain_within(wb, 2000, &h);
        assert_true(h.flags & WATCH_HINT_OVERFLOW);
        assert_true(h.flags & WATCH_HINT_ROOT_GONE);
        watch_hints_release(&h);
        watch_backend_close(wb);
        f->wb = NULL;

        rmdir(away);
        free(d);
        free(away);
    }
}

/* ---- inotify: INCOMPLETE ---------------------------------------------- */

/* depth directories in a chain below f->dir/t: t/d/d/.../d */
static char *chain(const struct fixture *f, int depth)
{
    char *p = sub(f, "t");
    assert_int_equal(mkdir(p, 0755), 0);
    for (int i = 0; i < depth; i++) {
        char *q = xasprintf("%s/d", p);
        free(p);
        p = q;
        assert_int_equal(mkdir(p, 0755), 0);
    }
    free(p);
    return sub(f, "t");
}

static unsigned first_batch(const char *dir)
{
    char err[256];
    struct watch_backend *wb = NULL;
    assert_int_equal(watch_backend_open("inotify", dir, &wb, err, sizeof(err)), 0);
    struct watch_hints h;
    drain_within(wb, 300, &h);
    unsigned flags = h.flags;
    watch_hints_release(&h);
    watch_backend_close(wb);
    return flags;
}

static void test_inotify_depth_cap(void **state)
{
    struct fixture *f = *state;
    char *t = chain(f, SCAN_MAX_DEPTH);
    assert_int_equal(first_batch(t), 0); /* exactly the cap: all watched */
    char *deeper = xasprintf("%s/%s", t, "d");
    for (int i = 1; i < SCAN_MAX_DEPTH; i++) {
        char *q = xasprintf("%s/d", deeper);
        free(deeper);
        deeper = q;
    }
    char *over = xasprintf("%s/d", deeper);
    assert_int_equal(mkdir(over, 0755), 0);
    assert_true(first_batch(t) & WATCH_HINT_INCOMPLETE); /* reported without any event */
    free(over);
    free(deeper);
    free(t);
}

static void test_inotify_dir_cap(void **state)
{
    struct fixture *f = *state;
    char *t = sub(f, "many");
    assert_int_equal(mkdir(t, 0755), 0);
    for (int i = 0; i < WATCH_MAX_DIRS - 1; i++) { /* with the root: exactly the cap */
        char *d = xasprintf("%s/%d", t, i);
        assert_int_equal(mkdir(d, 0755), 0);
        free(d);
    }
    assert_int_equal(first_batch(t), 0);
    char *d = xasprintf("%s/one-more", t);
    assert_int_equal(mkdir(d, 0755), 0);
    assert_true(first_batch(t) & WATCH_HINT_INCOMPLETE);
    free(d);
    free(t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hints_add),
        cmocka_unit_test(test_skip_dir),
        cmocka_unit_test(test_compiled),
        T(test_open_errors),
        T(test_open_each),
        T(test_root_gone_is_sticky),
        T(test_inotify_depth_cap),
        T(test_inotify_dir_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
