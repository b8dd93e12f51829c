/*
 * test_scan.c - reconciler/scan.c: which files of a manifest tree are
 * listed, how links are followed and contained, and the skill digest.
 *
 * Every test builds its tree in a fresh mkdtemp() directory and removes it
 * afterwards; nothing is read from the source tree.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "diag.h"
#include "err.h"
#include "hash.h"
#include "scan.h"
#include "xalloc.h"

/* ---- tree helpers ------------------------------------------------------ */

struct fixture {
    char *dir; /* the mkdtemp directory */
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    char *templ = xasprintf("%s/test_scan.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(templ)) {
        free(templ);
        free(f);
        return -1;
    }
    /* Real path, so "inside the root" comparisons in tests are exact. */
    f->dir = realpath(templ, NULL);
    free(templ);
    *state = f;
    return f->dir ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP || type == FTW_D || type == FTW_DNR) {
        chmod(path, 0700);
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    }
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int make_searchable(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_D || type == FTW_DNR)
        chmod(path, 0700);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->dir, make_searchable, 16, FTW_PHYS);
    nftw(f->dir, rm_one, 16, FTW_PHYS | FTW_DEPTH);
    free(f->dir);
    free(f);
    return 0;
}

/* mkdir -p for an absolute path. */
static void mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    mkdir(p, 0755);
    free(p);
}

/* mkdir -p for base/rel. */
static void mkdirs(const char *base, const char *rel)
{
    char *p = xasprintf("%s/%s", base, rel);
    mkdir_p(p);
    free(p);
}

/* Writes base/rel (creating parents) with content. */
static void put(const char *base, const char *rel, const char *content)
{
    char *p = xasprintf("%s/%s", base, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    mkdir_p(p);
    *slash = '/';
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
    free(p);
}

static void link_at(const char *base, const char *rel, const char *target)
{
    char *p = xasprintf("%s/%s", base, rel);
    assert_int_equal(symlink(target, p), 0);
    free(p);
}

/* "rel1,rel2,..." of a result, for one-line comparisons. */
static char *rels(const struct scan_result *r)
{
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < r->n; i++)
        buf_appendf(&b, "%s%s", i ? "," : "", r->v[i].rel);
    return buf_detach(&b, NULL);
}

static void assert_rels(const struct scan_result *r, const char *want)
{
    char *got = rels(r);
    assert_string_equal(got, want);
    free(got);
}

/* The message of the only diagnostic on path; fails if there is not exactly one. */
static const char *diag_on(const struct diag_list *l, const char *path)
{
    const char *msg = NULL;
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].path, path) == 0) {
            msg = l->v[i].msg;
            n++;
        }
    }
    if (n != 1)
        fail_msg("expected one diagnostic on %s, found %zu", path, n);
    return msg;
}

static void assert_diag(const struct diag_list *l, const char *base, const char *rel,
                        const char *msg)
{
    char *path = xasprintf("%s/%s", base, rel);
    assert_string_equal(diag_on(l, path), msg);
    assert_int_equal(l->v[0].line, 0);
    free(path);
}

/* ---- manifest_dir_scan ------------------------------------------------- */

static void test_filters_and_order(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;
    char *root = xasprintf("%s/m", f->dir);

    put(root, "b.md", "");
    put(root, "a.md", "");
    put(root, "team/z.md", "");
    put(root, "team/skills/nested.md", "");  /* nested skills/ is scanned */
    put(root, "skills/writer/SKILL.md", ""); /* top-level skills/ is not */
    put(root, "skills/top.md", "");          /* not even .md directly in it */
    put(root, "README.md", "");              /* README at any depth, any case */
    put(root, "team/readme.md", "");
    put(root, "team/ReadMe.md", "");
    put(root, ".hidden.md", ""); /* hidden files and dirs */
    put(root, ".git/x.md", "");
    put(root, ".git-sync/x.md", "");
    put(root, "team/.cache/x.md", "");
    put(root, "a.md~", ""); /* editor temp files */
    put(root, ".a.md.swp", "");
    put(root, "b.swp", "");
    put(root, "#a.md#", "");
    put(root, "4913", "");
    put(root, "notes.txt", ""); /* not .md */
    put(root, "UPPER.MD", "");  /* .md is case-sensitive */
    put(root, ".md", "");
    put(root, "x.md/inner.md", ""); /* a directory named *.md is walked */
    put(root, "team/deep/er/c.md", "");
    put(root, "a-b.md", "");     /* '-' sorts before '.' and '/' */
    put(root, "team~/x.md", ""); /* temp-named directory: skipped */

    diag_list_init(&diags);
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_int_equal(diags.n, 0);
    assert_true(r.complete);
    assert_rels(&r, "a-b.md,a.md,b.md,team/deep/er/c.md,team/skills/nested.md,team/z.md,"
                    "x.md/inner.md");

    char *want = xasprintf("%s/team/deep/er/c.md", root);
    assert_string_equal(r.v[3].path, want);
    assert_string_equal(r.v[3].stem, "c");
    assert_string_equal(r.v[0].stem, "a-b");
    assert_string_equal(r.v[6].stem, "inner");
    free(want);

    scan_result_release(&r);
    assert_int_equal(r.n, 0);
    assert_null(r.v);
    diag_list_release(&diags);
    free(root);
}

static void test_display_paths(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;
    char cwd[4096];

    put(f->dir, "m/team/a.md", "");
    diag_list_init(&diags);

    /* Trailing slashes are not doubled. */
    char *slashed = xasprintf("%s/m//", f->dir);
    assert_int_equal(manifest_dir_scan(slashed, &diags, &r), 0);
    char *want = xasprintf("%s/m/team/a.md", f->dir);
    assert_string_equal(r.v[0].path, want);
    assert_string_equal(r.v[0].rel, "team/a.md");
    scan_result_release(&r);
    free(want);
    free(slashed);

    /* A relative root stays relative; "." gives bare relative paths. */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(manifest_dir_scan("m", &diags, &r), 0);
    assert_string_equal(r.v[0].path, "m/team/a.md");
    scan_result_release(&r);
    assert_int_equal(chdir("m"), 0);
    assert_int_equal(manifest_dir_scan(".", &diags, &r), 0);
    assert_string_equal(r.v[0].path, "team/a.md");
    scan_result_release(&r);
    assert_int_equal(manifest_dir_scan("./", &diags, &r), 0);
    assert_string_equal(r.v[0].path, "team/a.md");
    scan_result_release(&r);
    assert_int_equal(chdir(cwd), 0);

    assert_int_equal(diags.n, 0);
    diag_list_release(&diags);
}

/* git-sync publishes `bottles -> .rev-1/`; links inside that stay inside are followed. */
static void test_root_through_symlink(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;

    put(f->dir, ".rev-1/a.md", "");
    put(f->dir, ".rev-1/team/b.md", "");
    put(f->dir, ".rev-1/shared/c.md", "");
    link_at(f->dir, "bottles", ".rev-1");
    link_at(f->dir, ".rev-1/alias.md", "a.md");         /* file link inside */
    link_at(f->dir, ".rev-1/team/common", "../shared"); /* dir link inside */
    char *abs = xasprintf("%s/.rev-1/team/b.md", f->dir);
    link_at(f->dir, ".rev-1/abs.md", abs); /* absolute link, inside through the real path */
    free(abs);
    link_at(f->dir, ".rev-1/via-root.md", "../bottles/a.md"); /* through the root link */

    char *root = xasprintf("%s/bottles", f->dir);
    diag_list_init(&diags);
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_int_equal(diags.n, 0);
    assert_true(r.complete);
    assert_rels(&r, "a.md,abs.md,alias.md,shared/c.md,team/b.md,team/common/c.md,via-root.md");
    char *want = xasprintf("%s/bottles/team/common/c.md", f->dir);
    assert_string_equal(r.v[5].path, want);
    assert_string_equal(r.v[5].stem, "c");
    assert_string_equal(r.v[2].stem, "alias"); /* the link's name, not the target's */
    free(want);
    scan_result_release(&r);
    diag_list_release(&diags);
    free(root);
}

static void test_escape_is_error_for_that_path_only(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;
    char *root = xasprintf("%s/b", f->dir);

    put(root, "a.md", "");
    put(root, "team/c.md", "");
    put(f->dir, "outside.md", "");
    put(f->dir, "bot/z.md", ""); /* /x/bot is not inside /x/b */
    put(f->dir, "outdir/y.md", "");
    link_at(root, "evil.md", "../outside.md");
    link_at(root, "prefix.md", "../bot/z.md");
    link_at(root, "team/outdir", "../../outdir");
    link_at(root, "etc", "/etc");
    link_at(root, "LICENSE", "../outside.md"); /* ignored name, non-directory: skipped */

    diag_list_init(&diags);
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_false(r.complete);
    assert_rels(&r, "a.md,team/c.md");
    assert_int_equal(diags.n, 4);

    char *msg =
        xasprintf("symbolic link escapes the manifest directory (-> %s/outside.md)", f->dir);
    assert_diag(&diags, root, "evil.md", msg);
    free(msg);
    msg = xasprintf("symbolic link escapes the manifest directory (-> %s/bot/z.md)", f->dir);
    assert_diag(&diags, root, "prefix.md", msg);
    free(msg);
    msg = xasprintf("symbolic link escapes the manifest directory (-> %s/outdir)", f->dir);
    assert_diag(&diags, root, "team/outdir", msg);
    free(msg);
    assert_int_equal(diags.v[0].level, DIAG_ERROR);

    scan_result_release(&r);
    diag_list_release(&diags);
    free(root);
}

static void test_dangling_and_loops(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;
    char *root = xasprintf("%s/m", f->dir);

    put(root, "a.md", "");
    put(root, "team/b.md", "");
    link_at(root, "gone.md", "nowhere.md");
    link_at(root, "gone-dir", "nowhere"); /* any name may have been a directory */
    link_at(root, "team/up", "..");       /* directory link to an ancestor */
    link_at(root, "team/self", ".");
    link_at(root, "self.md", "self.md"); /* ELOOP */

    diag_list_init(&diags);
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_false(r.complete);
    assert_rels(&r, "a.md,team/b.md");
    assert_int_equal(diags.n, 5);
    assert_diag(&diags, root, "gone.md", "dangling symbolic link");
    assert_diag(&diags, root, "gone-dir", "dangling symbolic link");
    assert_diag(&diags, root, "team/up", "symbolic link loop");
    assert_diag(&diags, root, "team/self", "symbolic link loop");
    assert_diag(&diags, root, "self.md", "symbolic link loop");

    scan_result_release(&r);
    diag_list_release(&diags);
    free(root);
}

/* The same real file through two paths is listed twice; duplicate names are found later. */
static void test_same_file_twice(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;
    char *root = xasprintf("%s/m", f->dir);

    put(root, "team/b.md", "");
    link_at(root, "other", "team"); /* sibling, not an ancestor: not a loop */
    link_at(root, "b.md", "team/b.md");

    diag_list_init(&diags);
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_true(r.complete);
    assert_int_equal(diags.n, 0);
    assert_rels(&r, "b.md,other/b.md,team/b.md");
    scan_result_release(&r);
    diag_list_release(&diags);
    free(root);
}

static void test_bad_root(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r = {0};
    char *missing = xasprintf("%s/missing", f->dir);
    char *file = xasprintf("%s/file.md", f->dir);
    char *dangling = xasprintf("%s/dangling", f->dir);
    char *under_file = xasprintf("%s/file.md/x", f->dir);

    put(f->dir, "file.md", "");
    link_at(f->dir, "dangling", "missing");
    diag_list_init(&diags);

    assert_int_equal(manifest_dir_scan(missing, &diags, &r), BD_E_NOTFOUND);
    assert_string_equal(diag_on(&diags, missing), "manifest directory not found");
    assert_int_equal(manifest_dir_scan(dangling, &diags, &r), BD_E_NOTFOUND);
    assert_int_equal(manifest_dir_scan(file, &diags, &r), BD_E_INVAL);
    assert_string_equal(diag_on(&diags, file), "manifest directory is not a directory");
    assert_int_equal(manifest_dir_scan(under_file, &diags, &r), BD_E_INVAL);
    assert_int_equal(diags.n, 4);
    assert_null(r.v); /* untouched on failure */
    assert_int_equal(manifest_dir_scan(NULL, &diags, &r), BD_E_INVAL);

    diag_list_release(&diags);
    free(missing);
    free(file);
    free(dangling);
    free(under_file);
}

/*
 * Scans root, whose directory "locked" cannot be read; returns 0 if the
 * result is right.  No cmocka asserts: this may run in a forked child.
 */
static int check_unreadable(const char *root)
{
    struct diag_list diags;
    struct scan_result r;
    int bad = 1;
    char *locked = xasprintf("%s/locked", root);

    diag_list_init(&diags);
    if (manifest_dir_scan(root, &diags, &r) != 0)
        goto out;
    bad = r.complete || r.n != 1 || strcmp(r.v[0].rel, "a.md") != 0 || diags.n != 1 ||
          strcmp(diags.v[0].path, locked) != 0 ||
          strcmp(diags.v[0].msg, "cannot read directory: Permission denied") != 0;
    scan_result_release(&r);
out:
    diag_list_release(&diags);
    free(locked);
    return bad;
}

static void test_unreadable_dir(void **state)
{
    struct fixture *f = *state;
    char *root = xasprintf("%s/m", f->dir);
    char *locked = xasprintf("%s/locked", root);

    put(root, "a.md", "");
    put(root, "locked/b.md", "");
    assert_int_equal(chmod(locked, 0), 0);

    if (geteuid() != 0) {
        assert_int_equal(check_unreadable(root), 0);
    } else {
        /* root reads everything: scan as nobody in a child. */
        assert_int_equal(chmod(f->dir, 0755), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(2);
            _exit(check_unreadable(root));
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    chmod(locked, 0700);
    free(locked);
    free(root);
}

static void test_depth_cap(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;
    char *root = xasprintf("%s/m", f->dir);
    struct buf rel;

    /* 32 directory levels are fine, the 33rd is not walked. */
    buf_init(&rel, 0);
    for (int i = 1; i <= 33; i++) {
        buf_appendf(&rel, "%sd%d", i > 1 ? "/" : "", i);
        if (i == 32 || i == 33) {
            char *file = xasprintf("%s/f%d.md", buf_cstr(&rel), i);
            put(root, file, "");
            free(file);
        }
    }

    diag_list_init(&diags);
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_false(r.complete);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].stem, "f32");
    assert_diag(&diags, root, buf_cstr(&rel), "directory nesting too deep (more than 32 levels)");
    scan_result_release(&r);
    diag_list_release(&diags);
    buf_release(&rel);
    free(root);
}

static void test_entry_cap(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;
    char *root = xasprintf("%s/m", f->dir);

    mkdirs(f->dir, "m");
    for (int i = 0; i < SCAN_MAX_ENTRIES; i++) {
        char *name = xasprintf("%s/f%05d.md", root, i);
        FILE *fp = fopen(name, "w");
        assert_non_null(fp);
        fclose(fp);
        free(name);
    }
    /* Hidden entries do not count. */
    put(root, ".hidden.md", "");

    diag_list_init(&diags);
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_true(r.complete);
    assert_int_equal(r.n, SCAN_MAX_ENTRIES);
    scan_result_release(&r);

    put(root, "one-more.md", "");
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_false(r.complete);
    assert_int_equal(r.n, SCAN_MAX_ENTRIES);
    assert_string_equal(diag_on(&diags, root),
                        "too many entries in the manifest directory (more than 10000)");
    scan_result_release(&r);
    diag_list_release(&diags);
    free(root);
}

static void test_special_file(void **state)
{
    struct fixture *f = *state;
    struct diag_list diags;
    struct scan_result r;
    char *root = xasprintf("%s/m", f->dir);
    char *fifo = xasprintf("%s/pipe.md", root);
    char *fifo2 = xasprintf("%s/pipe", root);

    put(root, "a.md", "");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkfifo(fifo2, 0600), 0); /* not a manifest name: ignored */

    diag_list_init(&diags);
    assert_int_equal(manifest_dir_scan(root, &diags, &r), 0);
    assert_false(r.complete);
    assert_rels(&r, "a.md");
    assert_diag(&diags, root, "pipe.md", "not a regular file");
    assert_int_equal(diags.n, 1);
    scan_result_release(&r);
    diag_list_release(&diags);
    free(fifo);
    free(fifo2);
    free(root);
}

/* ---- skill_dir_digest -------------------------------------------------- */

#define MAX_FILES 10
#define MAX_BYTES 1024

static char *digest_ok(const char *root, const char *name)
{
    char hex[65];
    char *err = NULL;
    int r = skill_dir_digest(root, name, MAX_FILES, MAX_BYTES, hex, &err);
    if (r != 0)
        fail_msg("skill_dir_digest: %d %s", r, err ? err : "(no message)");
    assert_null(err);
    assert_int_equal(strlen(hex), 64);
    return xstrdup(hex);
}

static char *digest_err(const char *root, const char *name, size_t max_files, size_t max_bytes)
{
    char hex[65] = "untouched";
    char *err = NULL;
    assert_int_equal(skill_dir_digest(root, name, max_files, max_bytes, hex, &err), BD_E_INVAL);
    assert_string_equal(hex, "untouched");
    assert_non_null(err);
    return err;
}

static void assert_digest_err(const char *root, const char *name, size_t max_files,
                              size_t max_bytes, const char *want)
{
    char *err = digest_err(root, name, max_files, max_bytes);
    assert_string_equal(err, want);
    free(err);
}

static void test_skill_digest_format(void **state)
{
    struct fixture *f = *state;
    char *root = xasprintf("%s/m", f->dir);
    char *path;

    put(root, "skills/w/SKILL.md", "hello\n");
    put(root, "skills/w/sub/run.sh", "#!/bin/sh\n");
    put(root, "skills/w/sub-x", "");
    mkdirs(root, "skills/w/empty");
    path = xasprintf("%s/skills/w/SKILL.md", root);
    chmod(path, 0644);
    free(path);
    path = xasprintf("%s/skills/w/sub/run.sh", root);
    chmod(path, 0755);
    free(path);
    path = xasprintf("%s/skills/w/sub-x", root);
    chmod(path, 0600);
    free(path);

    /* Keys in bytewise order: "SKILL.md" < "empty/" < "sub-x" < "sub/" < "sub/run.sh". */
    static const char ser[] = "SKILL.md\0"
                              "644\0"
                              "6\0"
                              "hello\n"
                              "empty/\0"
                              "sub-x\0"
                              "600\0"
                              "0\0"
                              "sub/\0"
                              "sub/run.sh\0"
                              "755\0"
                              "10\0"
                              "#!/bin/sh\n";
    char want[65];
    sha256_hex(ser, sizeof(ser) - 1, want);

    char *got = digest_ok(root, "w");
    assert_string_equal(got, want);
    free(got);

    /* An empty skill directory hashes the empty string. */
    mkdirs(root, "skills/none");
    sha256_hex("", 0, want);
    got = digest_ok(root, "none");
    assert_string_equal(got, want);
    free(got);
    free(root);
}

static void test_skill_digest_changes(void **state)
{
    struct fixture *f = *state;
    char *root = xasprintf("%s/m", f->dir);
    char *file = xasprintf("%s/skills/w/SKILL.md", root);

    put(root, "skills/w/SKILL.md", "one");
    put(root, "skills/w/.hidden", "x");
    chmod(file, 0644);
    char *d1 = digest_ok(root, "w");
    char *d1b = digest_ok(root, "w");
    assert_string_equal(d1, d1b); /* stable */

    put(root, "skills/w/SKILL.md", "two");
    char *d2 = digest_ok(root, "w");
    assert_string_not_equal(d1, d2); /* content */

    chmod(file, 0600);
    char *d3 = digest_ok(root, "w");
    assert_string_not_equal(d2, d3); /* mode */

    mkdirs(root, "skills/w/new");
    char *d4 = digest_ok(root, "w");
    assert_string_not_equal(d3, d4); /* an empty directory */

    char *hidden = xasprintf("%s/skills/w/.hidden", root);
    unlink(hidden);
    char *d5 = digest_ok(root, "w");
    assert_string_not_equal(d4, d5); /* hidden files are content */

    /* The root may be reached through a link (git-sync). */
    char *alias = xasprintf("%s/alias", f->dir);
    assert_int_equal(symlink("m", alias), 0);
    char *d6 = digest_ok(alias, "w");
    assert_string_equal(d5, d6);

    free(d1);
    free(d1b);
    free(d2);
    free(d3);
    free(d4);
    free(d5);
    free(d6);
    free(alias);
    free(hidden);
    free(file);
    free(root);
}

static void test_skill_digest_errors(void **state)
{
    struct fixture *f = *state;
    char *root = xasprintf("%s/m", f->dir);

    put(root, "skills/w/SKILL.md", "abc");
    put(root, "skills/w/sub/a", "defg");
    put(root, "skills/linked/SKILL.md", "");
    link_at(root, "skills/linked/sub", "../w");
    put(root, "skills/flink/SKILL.md", "");
    link_at(root, "skills/flink/x.md", "SKILL.md");
    link_at(root, "skills/alias", "w");
    put(root, "skills/file", "");

    assert_digest_err(root, "missing", MAX_FILES, MAX_BYTES,
                      "skill directory 'skills/missing/' not found");
    assert_digest_err(root, "linked", MAX_FILES, MAX_BYTES,
                      "skill 'linked' contains a symbolic link: sub");
    assert_digest_err(root, "flink", MAX_FILES, MAX_BYTES,
                      "skill 'flink' contains a symbolic link: x.md");
    assert_digest_err(root, "alias", MAX_FILES, MAX_BYTES,
                      "skill directory 'skills/alias/' is a symbolic link");
    assert_digest_err(root, "file", MAX_FILES, MAX_BYTES,
                      "skill directory 'skills/file/' is not a directory");
    assert_digest_err(root, "../m", MAX_FILES, MAX_BYTES, "invalid skill name '../m'");

    /* Caps: 2 files, 7 bytes. */
    char *d = digest_ok(root, "w");
    free(d);
    char hex[65];
    char *err = NULL;
    assert_int_equal(skill_dir_digest(root, "w", 2, 7, hex, &err), 0);
    assert_digest_err(root, "w", 1, 7, "skill 'w' has more than 1 files");
    assert_digest_err(root, "w", 2, 6, "skill 'w' is larger than 6 bytes");

    /* No skills/ directory at all. */
    char *bare = xasprintf("%s/bare", f->dir);
    mkdirs(f->dir, "bare");
    assert_digest_err(bare, "w", MAX_FILES, MAX_BYTES, "skill directory 'skills/w/' not found");

    /* skills/ itself a link. */
    char *other = xasprintf("%s/other", f->dir);
    mkdirs(f->dir, "other");
    char *target = xasprintf("%s/skills", root);
    char *l = xasprintf("%s/skills", other);
    assert_int_equal(symlink(target, l), 0);
    err = digest_err(other, "w", MAX_FILES, MAX_BYTES);
    assert_non_null(strstr(err, "symbolic link"));
    free(err);

    free(l);
    free(target);
    free(other);
    free(bare);
    free(root);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_filters_and_order),
        T(test_display_paths),
        T(test_root_through_symlink),
        T(test_escape_is_error_for_that_path_only),
        T(test_dangling_and_loops),
        T(test_same_file_twice),
        T(test_bad_root),
        T(test_unreadable_dir),
        T(test_depth_cap),
        T(test_entry_cap),
        T(test_special_file),
        T(test_skill_digest_format),
        T(test_skill_digest_changes),
        T(test_skill_digest_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
