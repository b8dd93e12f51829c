/*
 * replay_main.c - runs a fuzz target over a saved corpus, as a plain test.
 *
 * Usage: replay_<name> DIR-or-FILE...
 * Every regular file (dot files skipped) is fed once to
 * LLVMFuzzerTestOneInput() in name order, in a buffer of exactly its size
 * so that ASan catches reads past the end.  A broken invariant aborts
 * inside the target; finishing means every input passed.  An empty or
 * missing corpus is a failure: it would make the test pass vacuously.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fuzz_target.h"
#include "xalloc.h"

#define REPLAY_MAX_INPUT ((size_t)16 << 20)

static int run_file(const char *path)
{
    struct buf b;
    int ret = -1;

    buf_init(&b, REPLAY_MAX_INPUT);
    if (buf_read_file(&b, path) < 0) {
        fprintf(stderr, "replay: cannot read '%s'\n", path);
        goto out;
    }
    uint8_t *copy = xmalloc(b.len);
    if (b.len)
        memcpy(copy, b.data, b.len);
    LLVMFuzzerTestOneInput(copy, b.len);
    free(copy);
    ret = 0;
out:
    buf_release(&b);
    return ret;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the number of inputs run, or -1. */
static int run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int ret = -1;

    if (!d) {
        fprintf(stderr, "replay: cannot open '%s'\n", dir);
        return -1;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xasprintf("%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);

    int count = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (run_file(names[i]) < 0)
            goto out;
        count++;
    }
    ret = count;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return ret;
}

int main(int argc, char **argv)
{
    int total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS-DIR-or-FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int r;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            r = run_dir(argv[i]);
        else
            r = run_file(argv[i]) < 0 ? -1 : 1;
        if (r < 0)
            return 1;
        total += r;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replay: %d inputs ok\n", total);
    return 0;
}
