/*
 * cmd_render.c - `bottled render NAME`: one bottle's sidecar configuration,
 * secrets masked.
 *
 * Read-only: it loads the secret store, the knobs and the manifests exactly
 * as a reconcile pass would, renders the generation (render.h) and prints
 * routes.json, secrets.json with every value replaced by "<masked>", and the
 * config hash the sidecar would report.  It writes nothing and prints no
 * MANIFEST (its digest of secrets.json would let a weak value be guessed).
 *
 * Exit status: 0 rendered; 1 no such bottle, it has errors, or a route's
 * secret is missing or bound elsewhere; 2 bottled's own configuration is
 * wrong (flags, the secrets file, the state dir).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmd.h"
#include "err.h"
#include "json_canon.h"
#include "loader.h"
#include "render.h"
#include "secrets.h"
#include "xalloc.h"

#define HMAC_KEY_MAX        4096
#define PROVISIONAL_KEY_LEN 32

/*
 * The instance's HMAC key: the bytes of <state-dir>/hmac.key.  Until the
 * state module creates it, a fixed all-zero key stands in and *ret_final is
 * 0, so the hashes printed are not the ones a pass will deliver.  This is
 * the one place the state module replaces.  Returns 0 or -1 after a
 * message on stderr.
 */
static int load_hmac_key(const char *state_dir, unsigned char **ret_key, size_t *ret_len,
                         int *ret_final)
{
    char *path = xasprintf("%s/hmac.key", state_dir);
    unsigned char *key = xcalloc(1, HMAC_KEY_MAX + 1);
    ssize_t n = -1;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        *ret_key = key;
        *ret_len = PROVISIONAL_KEY_LEN;
        *ret_final = 0;
        key = NULL;
        rc = 0;
        goto out;
    }
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        do
            n = read(fd, key, HMAC_KEY_MAX + 1);
        while (n < 0 && errno == EINTR);
    } else if (fd >= 0) {
        errno = EINVAL;
    }
    if (n <= 0 || n > HMAC_KEY_MAX) {
        fprintf(stderr, "bottled: render: cannot use the HMAC key '%s': %s\n", path,
                n < 0    ? strerror(errno)
                : n == 0 ? "empty"
                         : "too long");
        goto out;
    }
    *ret_key = key;
    *ret_len = (size_t)n;
    *ret_final = 1;
    key = NULL;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (key) {
        OPENSSL_cleanse(key, HMAC_KEY_MAX + 1);
        free(key);
    }
    free(path);
    return rc;
}

/* Diagnostics of one bottle (by name) out of a whole directory's. */
static void print_bottle_diags(const struct diag_list *all, const char *name)
{
    struct diag_list mine;
    diag_list_init(&mine);
    for (size_t k = 0; k < all->n; k++)
        if (all->v[k].bottle && !strcmp(all->v[k].bottle, name))
            diag_add(&mine, all->v[k].level, all->v[k].path, all->v[k].line, all->v[k].col,
                     all->v[k].bottle, all->v[k].allowed, "%s", all->v[k].msg);
    diag_list_sort(&mine);
    diag_print_text(&mine, stderr);
    diag_list_release(&mine);
}

static void print_render(const char *name, const struct render_output *r, int final)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "bottle", name);
    cJSON_AddStringToObject(o, "config_hash", r->config_hash);
    cJSON_AddBoolToObject(o, "hash_final", final);
    cJSON_AddItemToObject(o, "routes", cJSON_Parse(r->routes_json));
    cJSON_AddItemToObject(o, "secrets", cJSON_Parse(r->secrets_masked));
    char *text = json_canon_print(o, 1);
    fputs(text, stdout);
    free(text);
    cJSON_Delete(o);
}

int cmd_render(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    if (argc != 1)
        return usage_error(
            cmd, argc ? "expected one bottle NAME, got %d arguments" : "expected a bottle NAME%.0d",
            argc);
    const char *name = argv[0];
    int ret = EXIT_USAGE;
    struct diag_list diags;
    diag_list_init(&diags);
    struct secret_store *store = NULL;
    struct render_knobs knobs = {0};
    int have_knobs = 0;
    unsigned char *key = NULL;
    size_t key_len = 0;
    int final = 0;
    struct manifest_set set = {0};
    int have_set = 0;
    struct render_output *r = NULL;
    char *secrets_path = NULL;

    /* bottled's own configuration first: any problem here is exit 2. */
    char *state_dir = opts_state_dir(o);
    if (!state_dir)
        goto out;
    secrets_path = o->secrets ? xstrdup(o->secrets) : xasprintf("%s/secrets", state_dir);
    int err = secret_store_load(secrets_path, o->secrets != NULL, o->secret_env.v, o->secret_env.n,
                                &diags, &store);
    diag_print_text(&diags, stderr); /* errors, or warnings such as a '*' binding */
    if (err) {
        fprintf(stderr, "bottled: render: the secret store cannot be used\n");
        goto out;
    }
    diag_list_release(&diags);
    diag_list_init(&diags);
    err = render_knobs_init(&knobs, o->proxy_dns, o->proxy_add_host.v, o->proxy_add_host.n,
                            o->proxy_allow_private.v, o->proxy_allow_private.n,
                            o->proxy_upstream_ca, &diags);
    if (err) {
        diag_print_text(&diags, stderr);
        ret = usage_error(cmd, "invalid --proxy-* settings");
        goto out;
    }
    have_knobs = 1;
    if (load_hmac_key(state_dir, &key, &key_len, &final) < 0)
        goto out;
    if (!final)
        fprintf(stderr,
                "bottled: render: no HMAC key in '%s' (no state yet: hashes are not "
                "final)\n",
                state_dir);

    have_set = 1; /* released even when loading fails, like `show` does */
    if (manifest_set_load(&set, o->dir, &diags) < 0) {
        diag_list_sort(&diags);
        diag_print_text(&diags, stderr);
        ret = usage_error(cmd, "cannot read manifest directory '%s'", o->dir);
        goto out;
    }
    ret = EXIT_FAILED;
    int declared = 0;
    for (size_t i = 0; i < set.n; i++)
        declared |= !strcmp(set.decls[i]->name, name);
    long i = manifest_set_find(&set, name);
    if (i < 0 || !set.bottles[i]) {
        if (declared) {
            print_bottle_diags(&diags, name);
            fprintf(stderr, "bottled: render: bottle '%s' has errors\n", name);
        } else {
            fprintf(stderr, "bottled: render: no bottle named '%s' in %s\n", name, o->dir);
        }
        goto out;
    }
    const struct bottle *b = set.bottles[i];
    if (b->abstract) {
        fprintf(stderr,
                "bottled: render: bottle '%s' is abstract (a template): it has no sidecar\n", name);
        goto out;
    }
    diag_list_release(&diags);
    diag_list_init(&diags);
    if (render_bottle(b, store, &knobs, key, key_len, NULL, &diags, &r) < 0) {
        diag_list_sort(&diags);
        diag_print_text(&diags, stderr);
        fprintf(stderr, "bottled: render: bottle '%s' failed\n", name);
        goto out;
    }
    print_render(name, r, final);
    ret = EXIT_OK;
out:
    render_output_free(r);
    if (have_set)
        manifest_set_release(&set);
    if (key) {
        OPENSSL_cleanse(key, key_len);
        free(key);
    }
    if (have_knobs)
        render_knobs_release(&knobs);
    secret_store_free(store);
    free(secrets_path);
    free(state_dir);
    diag_list_release(&diags);
    return ret;
}
