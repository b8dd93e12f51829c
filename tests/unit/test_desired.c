/*
 * test_desired.c - a bottle's desired resources (desired.h): names,
 * labels, networks, the agent's env, caps and limits, spec hashes and what
 * changes them, the /etc/bottle archive (parsed back), refusals, and the
 * /28 allocator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "desired.h"
#include "err.h"
#include "loader.h"
#include "render.h"
#include "xalloc.h"

#define EXAMPLES TEST_DATA_DIR "/../../examples"
#define INSTANCE "0123456789ab"
#define PROXY_ID "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define AGENT_ID "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define CFG_HASH "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define CA_PEM   "-----BEGIN CERTIFICATE-----\nMIIBdGVzdA==\n-----END CERTIFICATE-----\n"

static char tmpdir[] = "/tmp/test_desired.XXXXXX";

/* The same bottle twice: block style, LF, this key order ... */
static const char web_a[] = "---\n"
                            "# a comment\n"
                            "name: web\n"
                            "agent_provider: claude\n"
                            "agent:\n"
                            "  user: agent\n"
                            "  workdir: /work\n"
                            "  command: [claude, --x]\n"
                            "  resources:\n"
                            "    cpus: 1.5\n"
                            "    memory: 2g\n"
                            "env:\n"
                            "  ZED: \"1\"\n"
                            "  ALPHA: two words\n"
                            "git-gate:\n"
                            "  user:\n"
                            "    name: Bot \"One\"\n"
                            "    email: bot@example.com\n"
                            "egress:\n"
                            "  routes:\n"
                            "    - host: pypi.org\n"
                            "    - host: files.pythonhosted.org\n"
                            "skills: [code-review, notes]\n"
                            "---\n"
                            "Prompt body.\n";

/* ... and flow style, CRLF, other orders. */
static const char web_b[] =
    "---\r\n"
    "skills: [code-review, notes]\r\n"
    "egress: {routes: [{host: files.pythonhosted.org}, {host: pypi.org}]}\r\n"
    "env: {ALPHA: two words, ZED: '1'}\r\n"
    "git-gate: {user: {email: bot@example.com, name: 'Bot \"One\"'}}\r\n"
    "agent: {resources: {memory: 2048m, cpus: 1.50}, command: [claude, --x], workdir: /work, "
    "user: agent}\r\n"
    "agent_provider: claude\r\n"
    "name: web\r\n"
    "---\r\n"
    "Prompt body.\r\n";

static const char plain[] = "---\nname: plain\n---\n";

static char *path_of(const char *rel)
{
    return xasprintf("%s/%s", tmpdir, rel);
}

static void write_rel(const char *rel, const char *data, mode_t mode)
{
    char *p = path_of(rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, strlen(data), f), strlen(data));
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static void mkdir_rel(const char *rel)
{
    char *p = path_of(rel);
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
}

/* A manifest directory with the skills of web_a/web_b. */
static void make_dir(const char *dir, const char *name, const char *manifest)
{
    char *rel;
    mkdir_rel(dir);
    rel = xasprintf("%s/skills", dir);
    mkdir_rel(rel);
    free(rel);
    rel = xasprintf("%s/skills/code-review", dir);
    mkdir_rel(rel);
    free(rel);
    rel = xasprintf("%s/skills/code-review/bin", dir);
    mkdir_rel(rel);
    free(rel);
    rel = xasprintf("%s/skills/notes", dir);
    mkdir_rel(rel);
    free(rel);
    rel = xasprintf("%s/skills/code-review/SKILL.md", dir);
    write_rel(rel, "# Code review\nLook carefully.\n", 0664);
    free(rel);
    rel = xasprintf("%s/skills/code-review/bin/run.sh", dir);
    write_rel(rel, "#!/bin/sh\necho run\n", 0700);
    free(rel);
    rel = xasprintf("%s/skills/notes/.hidden", dir);
    write_rel(rel, "", 0600);
    free(rel);
    rel = xasprintf("%s/%s.md", dir, name);
    write_rel(rel, manifest, 0644);
    free(rel);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    make_dir("a", "web", web_a);
    make_dir("b", "web", web_b);
    mkdir_rel("plain");
    write_rel("plain/plain.md", plain, 0644);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

struct loaded {
    struct manifest_set set;
    char *root;
};

static const struct bottle *load(struct loaded *l, const char *root, const char *name)
{
    struct diag_list d;
    diag_list_init(&d);
    l->root = xstrdup(root);
    int rc = manifest_set_load(&l->set, l->root, &d);
    if (rc || d.n_errors)
        fail_msg("load %s: %s", root, d.n ? diag_format(&d.v[0]) : bd_strerror(rc));
    diag_list_release(&d);
    long i = manifest_set_find(&l->set, name);
    assert_true(i >= 0);
    assert_non_null(l->set.bottles[i]);
    return l->set.bottles[i];
}

static void unload(struct loaded *l)
{
    manifest_set_release(&l->set);
    free(l->root);
}

static struct desired_opts opts(const char *root)
{
    return (struct desired_opts){
        .instance = INSTANCE,
        .proxy_image = "localhost/bottled-proxy:test",
        .proxy_image_id = PROXY_ID,
        .agent_image_id = AGENT_ID,
        .int_subnet = "10.213.0.0/28",
        .egr_subnet = "10.213.0.16/28",
        .ca_cert_pem = CA_PEM,
        .ca_cert_len = strlen(CA_PEM),
        .config_hash = CFG_HASH,
        .skills_root = root,
    };
}

static struct desired *compute(const struct bottle *b, const struct desired_opts *o)
{
    struct diag_list d;
    struct desired *r = NULL;
    diag_list_init(&d);
    int rc = desired_bottle(b, o, &d, &r);
    if (rc)
        fail_msg("desired %s: %s", b->name, d.n ? diag_format(&d.v[0]) : bd_strerror(rc));
    diag_list_release(&d);
    return r;
}

/* Loads DIR (relative to tmpdir) and computes bottle name. */
static struct desired *desired_of(const char *dir, const char *name, const char *prefix)
{
    struct loaded l;
    char *root = path_of(dir);
    const struct bottle *b = load(&l, root, name);
    struct desired_opts o = opts(root);
    o.name_prefix = prefix;
    struct desired *d = compute(b, &o);
    unload(&l);
    free(root);
    return d;
}

static void test_resources_and_names(void **state)
{
    (void)state;
    struct desired *d = desired_of("a", "web", NULL);
    static const char *const names[] = {"bottle-web-int",  "bottle-web-egr",   "bottle-web-work",
                                        "bottle-web-cfg",  "bottle-web-proxy", NULL,
                                        "bottle-web-agent"};
    static const enum desired_kind kinds[] = {
        DESIRED_NETWORK,   DESIRED_NETWORK,   DESIRED_VOLUME,   DESIRED_VOLUME,
        DESIRED_CONTAINER, DESIRED_CONTAINER, DESIRED_CONTAINER};
    assert_int_equal(d->n, ROLE__COUNT);
    assert_string_equal(d->bottle, "web");
    assert_string_equal(d->config_hash, CFG_HASH);
    /* no git-gate.repos: no gate */
    assert_false(desired_has(d, ROLE_GATE));
    assert_null(d->res[ROLE_GATE].spec);
    for (size_t i = 0; i < d->n; i++) {
        if (!names[i])
            continue;
        assert_int_equal(d->res[i].role, i);
        assert_int_equal(d->res[i].kind, kinds[i]);
        assert_string_equal(d->res[i].name, names[i]);
        assert_int_equal(strlen(d->res[i].spec_hash), 64);
    }
    assert_string_equal(d->res[ROLE_PROXY].container.name, "bottle-web-proxy");
    desired_free(d);

    d = desired_of("a", "web", "team");
    assert_string_equal(d->res[ROLE_INT].name, "team-web-int");
    assert_string_equal(d->res[ROLE_INT].network.name, "team-web-int");
    assert_string_equal(d->res[ROLE_AGENT].container.name, "team-web-agent");
    assert_string_equal(d->res[ROLE_PROXY].container.endpoints[0].network, "team-web-egr");
    assert_string_equal(d->res[ROLE_AGENT].container.mounts[0].volume, "team-web-work");
    desired_free(d);
}

static void test_networks(void **state)
{
    (void)state;
    struct desired *d = desired_of("a", "web", NULL);
    const struct engine_network_spec *in = &d->res[ROLE_INT].network;
    const struct engine_network_spec *eg = &d->res[ROLE_EGR].network;
    assert_true(in->internal);
    assert_false(eg->internal);
    assert_string_equal(in->subnet, "10.213.0.0/28");
    assert_string_equal(in->gateway, "10.213.0.1");
    assert_string_equal(eg->subnet, "10.213.0.16/28");
    assert_string_equal(eg->gateway, "10.213.0.17");
    assert_string_equal(engine_kvs_get(&in->labels, LABEL_SUBNET), "10.213.0.0/28");

    /* bridge names: "bd" + 12 hex, stable, per role, instance and bottle */
    char b1[DESIRED_BRIDGE_LEN + 1], b2[DESIRED_BRIDGE_LEN + 1];
    assert_true(strlen(in->bridge_name) <= 15);
    assert_int_equal(strlen(in->bridge_name), 14);
    assert_memory_equal(in->bridge_name, "bd", 2);
    assert_int_equal(strspn(in->bridge_name + 2, "0123456789abcdef"), 12);
    desired_bridge_name(INSTANCE, "web", ROLE_INT, b1);
    assert_string_equal(b1, in->bridge_name);
    assert_string_not_equal(in->bridge_name, eg->bridge_name);
    desired_bridge_name("0123456789ac", "web", ROLE_INT, b2);
    assert_string_not_equal(b1, b2);
    desired_bridge_name(INSTANCE, "web2", ROLE_INT, b2);
    assert_string_not_equal(b1, b2);

    /* the sidecar: egress first, .2 on both */
    const struct engine_container_spec *p = &d->res[ROLE_PROXY].container;
    assert_int_equal(p->n_endpoints, 2);
    assert_string_equal(p->endpoints[0].network, "bottle-web-egr");
    assert_string_equal(p->endpoints[0].ipv4, "10.213.0.18");
    assert_string_equal(p->endpoints[1].network, "bottle-web-int");
    assert_string_equal(p->endpoints[1].ipv4, "10.213.0.2");
    /* the agent: internal only, .4 */
    const struct engine_container_spec *a = &d->res[ROLE_AGENT].container;
    assert_int_equal(a->n_endpoints, 1);
    assert_string_equal(a->endpoints[0].network, "bottle-web-int");
    assert_string_equal(a->endpoints[0].ipv4, "10.213.0.4");
    assert_int_equal(a->extra_hosts.n, 2);
    assert_string_equal(a->extra_hosts.v[0], "proxy:10.213.0.2");
    assert_string_equal(a->extra_hosts.v[1], "gate:10.213.0.3");
    desired_free(d);
}

static void test_proxy(void **state)
{
    (void)state;
    struct desired *d = desired_of("a", "web", NULL);
    const struct engine_container_spec *p = &d->res[ROLE_PROXY].container;
    assert_string_equal(p->image, PROXY_ID);
    assert_int_equal(p->cmd.n, 4);
    assert_string_equal(p->cmd.v[0], "--config");
    assert_string_equal(p->cmd.v[1], "/cfg");
    /* the admin endpoint on the egress address only */
    assert_string_equal(p->cmd.v[2], "--admin");
    assert_string_equal(p->cmd.v[3], "10.213.0.18:9098");
    assert_int_equal(p->entrypoint.n, 0);
    assert_null(p->user);
    assert_int_equal(p->env.n, 0);
    assert_true(p->cap_drop_all);
    assert_int_equal(p->cap_add.n, 0);
    assert_int_equal(p->sysctls.n, 2);
    assert_string_equal(engine_kvs_get(&p->sysctls, "net.ipv4.ip_forward"), "0");
    assert_string_equal(engine_kvs_get(&p->sysctls, "net.ipv6.conf.all.forwarding"), "0");
    assert_int_equal(p->n_mounts, 1);
    assert_string_equal(p->mounts[0].volume, "bottle-web-cfg");
    assert_string_equal(p->mounts[0].target, "/cfg");
    assert_false(p->mounts[0].read_only);
    desired_free(d);
}

static void test_agent_env_caps_limits(void **state)
{
    (void)state;
    struct desired *d = desired_of("a", "web", NULL);
    const struct engine_container_spec *a = &d->res[ROLE_AGENT].container;
    static const char *const env[] = {
        "http_proxy=http://proxy:9099",
        "https_proxy=http://proxy:9099",
        "no_proxy=localhost,127.0.0.1,::1,gate",
        "HTTP_PROXY=http://proxy:9099",
        "HTTPS_PROXY=http://proxy:9099",
        "NO_PROXY=localhost,127.0.0.1,::1,gate",
        "SSL_CERT_FILE=/etc/bottle/ca.pem",
        "NODE_EXTRA_CA_CERTS=/etc/bottle/ca.pem",
        "REQUESTS_CA_BUNDLE=/etc/bottle/ca.pem",
        "GIT_SSL_CAINFO=/etc/bottle/ca.pem",
        "CURL_CA_BUNDLE=/etc/bottle/ca.pem",
        "GIT_CONFIG_SYSTEM=/etc/bottle/gitconfig",
        "BOTTLE_PROMPT_FILE=/etc/bottle/prompt.md",
        "BOTTLE_SKILLS_DIR=/etc/bottle/skills",
        "ALPHA=two words",
        "ZED=1",
    };
    assert_int_equal(a->env.n, sizeof(env) / sizeof(env[0]));
    for (size_t i = 0; i < a->env.n; i++)
        assert_string_equal(a->env.v[i], env[i]);

    static const char *const caps[] = {"CHOWN",  "DAC_OVERRIDE", "FOWNER",
                                       "SETUID", "SETGID",       "KILL"};
    assert_true(a->cap_drop_all);
    assert_int_equal(a->cap_add.n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(a->cap_add.v[i], caps[i]);
    assert_true(a->no_new_privileges);
    assert_int_equal(a->sysctls.n, 0);

    assert_string_equal(a->image, AGENT_ID);
    assert_string_equal(a->user, "agent");
    assert_string_equal(a->workdir, "/work");
    assert_int_equal(a->n_mounts, 1);
    assert_string_equal(a->mounts[0].volume, "bottle-web-work");
    assert_string_equal(a->mounts[0].target, "/work");
    assert_int_equal(a->cmd.n, 2);
    assert_string_equal(a->cmd.v[0], "claude");
    assert_string_equal(a->cmd.v[1], "--x");

    /* cpus 1.5 and memory 2g set; pids keeps its default */
    assert_int_equal(a->nano_cpus, 1500000000);
    assert_int_equal(a->memory, (int64_t)2 << 30);
    assert_int_equal(a->pids_limit, 1024);
    desired_free(d);

    /* defaults: nothing set */
    d = desired_of("plain", "plain", NULL);
    a = &d->res[ROLE_AGENT].container;
    assert_int_equal(a->env.n, 14);
    assert_int_equal(a->nano_cpus, 0);
    assert_int_equal(a->memory, (int64_t)4 << 30);
    assert_int_equal(a->pids_limit, 1024);
    assert_null(a->user);
    assert_string_equal(a->workdir, "/workspace");
    assert_string_equal(a->mounts[0].target, "/workspace");
    assert_int_equal(a->cmd.n, 0);
    desired_free(d);
}

static void check_labels(const struct desired *d, const char *provider)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct desired_resource *r = &d->res[i];
        if (!desired_has(d, i))
            continue;
        const struct engine_kvs *sets[2] = {&r->labels, NULL};
        if (r->kind == DESIRED_NETWORK)
            sets[1] = &r->network.labels;
        if (r->kind == DESIRED_CONTAINER)
            sets[1] = &r->container.labels;
        for (size_t s = 0; s < 2 && sets[s]; s++) {
            const struct engine_kvs *l = sets[s];
            assert_string_equal(engine_kvs_get(l, LABEL_MANAGED), "true");
            assert_string_equal(engine_kvs_get(l, LABEL_INSTANCE), INSTANCE);
            assert_string_equal(engine_kvs_get(l, LABEL_BOTTLE), d->bottle);
            assert_string_equal(engine_kvs_get(l, LABEL_ROLE), desired_role_name(r->role));
            assert_string_equal(engine_kvs_get(l, LABEL_SPEC_HASH), r->spec_hash);
            assert_string_equal(engine_kvs_get(l, LABEL_HASH_SCHEME), "1");
            if (provider)
                assert_string_equal(engine_kvs_get(l, LABEL_AGENT_PROVIDER), provider);
            else
                assert_null(engine_kvs_get(l, LABEL_AGENT_PROVIDER));
            assert_int_equal(l->n, 6 + !!provider + (r->kind == DESIRED_NETWORK));
        }
    }
}

static void test_labels(void **state)
{
    (void)state;
    struct desired *d = desired_of("a", "web", NULL);
    check_labels(d, "claude");
    /* the spec holds the labels, but never the spec hash */
    assert_null(strstr(d->res[ROLE_AGENT].spec, LABEL_SPEC_HASH));
    assert_non_null(strstr(d->res[ROLE_AGENT].spec, LABEL_AGENT_PROVIDER));
    assert_null(strstr(d->res[ROLE_PROXY].spec, LABEL_AGENT_PROVIDER));
    desired_free(d);
    d = desired_of("plain", "plain", NULL);
    check_labels(d, NULL);
    desired_free(d);
}

static void test_same_bottle_written_differently(void **state)
{
    (void)state;
    struct desired *a = desired_of("a", "web", NULL);
    struct desired *b = desired_of("b", "web", NULL);
    for (size_t i = 0; i < a->n; i++) {
        if (!desired_has(a, i))
            continue;
        assert_string_equal(a->res[i].spec, b->res[i].spec);
        assert_string_equal(a->res[i].spec_hash, b->res[i].spec_hash);
    }
    assert_int_equal(a->agent_tar_len, b->agent_tar_len);
    assert_memory_equal(a->agent_tar, b->agent_tar, a->agent_tar_len);
    /* and the spec hash is the documented one */
    char *in = xasprintf("bottled-spec 1\n%s", a->res[ROLE_AGENT].spec);
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex(in, strlen(in), hex);
    free(in);
    assert_string_equal(hex, a->res[ROLE_AGENT].spec_hash);
    assert_non_null(strstr(a->res[ROLE_AGENT].spec, a->agent_tar_digest));
    desired_free(a);
    desired_free(b);
}

/* Hashes of d's resources that differ from ref's, as a bit set by role. */
static unsigned changed(const struct desired *ref, const struct desired *d)
{
    unsigned bits = 0;
    for (size_t i = 0; i < ROLE__COUNT; i++)
        if (desired_has(ref, i) && strcmp(ref->res[i].spec_hash, d->res[i].spec_hash))
            bits |= 1u << i;
    return bits;
}

/* Writes dir/web.md from web_a with one substitution. */
static struct desired *variant(const char *dir, const char *from, const char *to)
{
    const char *at = strstr(web_a, from);
    assert_non_null(at);
    char *text = xasprintf("%.*s%s%s", (int)(at - web_a), web_a, to, at + strlen(from));
    make_dir(dir, "web", text);
    free(text);
    return desired_of(dir, "web", NULL);
}

static struct render_output *render_of(const char *dir)
{
    struct loaded l;
    char *root = path_of(dir);
    const struct bottle *b = load(&l, root, "web");
    struct diag_list d;
    diag_list_init(&d);
    struct render_knobs k;
    assert_int_equal(render_knobs_init(&k, NULL, NULL, 0, NULL, 0, NULL, &d), 0);
    struct render_output *r = NULL;
    static const unsigned char key[] = "k";
    assert_int_equal(render_bottle(b, NULL, &k, key, 1, NULL, &d, &r), 0);
    render_knobs_release(&k);
    diag_list_release(&d);
    unload(&l);
    free(root);
    return r;
}

static void test_what_changes_what(void **state)
{
    (void)state;
    struct desired *ref = desired_of("a", "web", NULL);
    struct desired *d;

    /* env: the agent only */
    d = variant("env", "ALPHA: two words", "ALPHA: three words");
    assert_int_equal(changed(ref, d), 1u << ROLE_AGENT);
    desired_free(d);

    /* a route: no container (nor anything else); render's hash moves */
    d = variant("route", "    - host: pypi.org\n", "    - host: pypi.org\n    - host: x.org\n");
    assert_int_equal(changed(ref, d), 0);
    desired_free(d);
    struct render_output *r1 = render_of("a"), *r2 = render_of("route");
    assert_string_not_equal(r1->config_hash, r2->config_hash);
    render_output_free(r1);
    render_output_free(r2);

    /* the prompt, a skill file, the identity: the agent (its archive) */
    d = variant("prompt", "Prompt body.", "Another prompt.");
    assert_int_equal(changed(ref, d), 1u << ROLE_AGENT);
    assert_string_not_equal(ref->agent_tar_digest, d->agent_tar_digest);
    desired_free(d);
    d = variant("ident", "bot@example.com", "bot2@example.com");
    assert_int_equal(changed(ref, d), 1u << ROLE_AGENT);
    desired_free(d);
    write_rel("a/skills/notes/.hidden", "x", 0600);
    d = desired_of("a", "web", NULL);
    assert_int_equal(changed(ref, d), 1u << ROLE_AGENT);
    desired_free(d);
    write_rel("a/skills/notes/.hidden", "", 0600);

    /* the provider: only the agent's spec holds it */
    d = variant("prov", "agent_provider: claude", "agent_provider: codex");
    assert_int_equal(changed(ref, d), 1u << ROLE_AGENT);
    desired_free(d);

    /* the proxy image: the sidecar only */
    struct loaded l;
    char *root = path_of("a");
    const struct bottle *b = load(&l, root, "web");
    struct desired_opts o = opts(root);
    o.proxy_image_id = AGENT_ID;
    d = compute(b, &o);
    assert_int_equal(changed(ref, d), 1u << ROLE_PROXY);
    desired_free(d);
    /* the config hash: nothing */
    o = opts(root);
    o.config_hash = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
    d = compute(b, &o);
    assert_int_equal(changed(ref, d), 0);
    desired_free(d);
    /* the internal subnet: the network and both containers attached */
    o = opts(root);
    o.int_subnet = "10.213.0.32/28";
    d = compute(b, &o);
    assert_int_equal(changed(ref, d), 1u << ROLE_INT | 1u << ROLE_PROXY | 1u << ROLE_AGENT);
    desired_free(d);
    /* the egress subnet: the network and the sidecar */
    o = opts(root);
    o.egr_subnet = "10.213.0.32/28";
    d = compute(b, &o);
    assert_int_equal(changed(ref, d), 1u << ROLE_EGR | 1u << ROLE_PROXY);
    desired_free(d);
    /* the instance: everything */
    o = opts(root);
    o.instance = "ba9876543210";
    d = compute(b, &o);
    assert_int_equal(changed(ref, d), ((1u << ROLE__COUNT) - 1) & ~(1u << ROLE_GATE));
    desired_free(d);
    unload(&l);
    free(root);
    desired_free(ref);
}

/* ---- the archive, parsed back ------------------------------------------ */

struct tar_entry {
    char path[256];
    unsigned mode;
    char type;
    const unsigned char *data;
    size_t size;
};

static unsigned long long oct(const unsigned char *p, size_t n)
{
    unsigned long long v = 0;
    for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v * 8 + (unsigned)(p[i] - '0');
    return v;
}

static size_t parse_tar(const unsigned char *t, size_t len, struct tar_entry *out, size_t max)
{
    size_t off = 0, n = 0;
    assert_int_equal(len % 512, 0);
    while (off + 512 <= len) {
        const unsigned char *h = t + off;
        int zero = 1;
        for (size_t i = 0; i < 512; i++)
            zero &= h[i] == 0;
        if (zero) {
            /* the end: two zero blocks, nothing after */
            assert_int_equal(off + 1024, len);
            for (size_t i = 512; i < 1024; i++)
                assert_int_equal(t[off + i], 0);
            return n;
        }
        assert_memory_equal(h + 257,
                            "ustar\0"
                            "00",
                            8);
        unsigned sum = 0;
        for (size_t i = 0; i < 512; i++)
            sum += (i >= 148 && i < 156) ? ' ' : h[i];
        assert_int_equal(oct(h + 148, 8), sum);
        assert_int_equal(oct(h + 108, 8), 0);  /* uid */
        assert_int_equal(oct(h + 116, 8), 0);  /* gid */
        assert_int_equal(oct(h + 136, 12), 0); /* mtime */
        assert_true(n < max);
        struct tar_entry *e = &out[n++];
        char name[101] = {0}, prefix[156] = {0};
        memcpy(name, h, 100);
        memcpy(prefix, h + 345, 155);
        snprintf(e->path, sizeof(e->path), "%s%s%s", prefix, *prefix ? "/" : "", name);
        e->mode = (unsigned)oct(h + 100, 8);
        e->type = (char)h[156];
        e->size = (size_t)oct(h + 124, 12);
        e->data = h + 512;
        off += 512 + (e->size + 511) / 512 * 512;
        assert_true(off <= len);
    }
    fail_msg("archive without its end blocks");
    return n;
}

static const struct tar_entry *find_entry(const struct tar_entry *v, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].path, path))
            return &v[i];
    fail_msg("no %s in the archive", path);
    return NULL;
}

static void test_archive(void **state)
{
    (void)state;
    struct desired *d1 = desired_of("a", "web", NULL);
    struct desired *d2 = desired_of("a", "web", NULL);
    assert_int_equal(d1->agent_tar_len, d2->agent_tar_len);
    assert_memory_equal(d1->agent_tar, d2->agent_tar, d1->agent_tar_len);
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex(d1->agent_tar, d1->agent_tar_len, hex);
    assert_string_equal(hex, d1->agent_tar_digest);

    struct tar_entry e[32];
    size_t n = parse_tar(d1->agent_tar, d1->agent_tar_len, e, 32);
    static const char *const paths[] = {
        "bottle/",
        "bottle/ca.pem",
        "bottle/gitconfig",
        "bottle/prompt.md",
        "bottle/skills/",
        "bottle/skills/code-review/",
        "bottle/skills/code-review/SKILL.md",
        "bottle/skills/code-review/bin/",
        "bottle/skills/code-review/bin/run.sh",
        "bottle/skills/notes/",
        "bottle/skills/notes/.hidden",
    };
    static const unsigned modes[] = {0755, 0644, 0644, 0644, 0755, 0755,
                                     0644, 0755, 0755, 0755, 0644};
    assert_int_equal(n, sizeof(paths) / sizeof(paths[0]));
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(e[i].path, paths[i]);
        assert_int_equal(e[i].mode, modes[i]);
        size_t l = strlen(paths[i]);
        assert_int_equal(e[i].type, paths[i][l - 1] == '/' ? '5' : '0');
    }
    const struct tar_entry *t = find_entry(e, n, "bottle/prompt.md");
    assert_int_equal(t->size, strlen("Prompt body.\n"));
    assert_memory_equal(t->data, "Prompt body.\n", t->size);
    t = find_entry(e, n, "bottle/ca.pem");
    assert_int_equal(t->size, strlen(CA_PEM));
    assert_memory_equal(t->data, CA_PEM, t->size);
    t = find_entry(e, n, "bottle/skills/code-review/bin/run.sh");
    assert_memory_equal(t->data, "#!/bin/sh\necho run\n", t->size);
    t = find_entry(e, n, "bottle/gitconfig");
    static const char gc[] = "# /etc/bottle/gitconfig, written by bottled (GIT_CONFIG_SYSTEM)\n"
                             "[user]\n"
                             "\tname = \"Bot \\\"One\\\"\"\n"
                             "\temail = \"bot@example.com\"\n";
    assert_int_equal(t->size, strlen(gc));
    assert_memory_equal(t->data, gc, t->size);
    desired_free(d1);
    desired_free(d2);

    /* long paths use the ustar prefix; too long ones fail */
    char *deep = xstrdup("a/skills/notes");
    for (int i = 0; i < 3; i++) {
        char *next = xasprintf("%s/%s", deep,
                               "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
        free(deep);
        deep = next;
        mkdir_rel(deep);
    }
    char *f = xasprintf("%s/file.txt", deep);
    write_rel(f, "deep\n", 0644);
    d1 = desired_of("a", "web", NULL);
    n = parse_tar(d1->agent_tar, d1->agent_tar_len, e, 32);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= strlen(e[i].path) > 100 && strstr(e[i].path, "/file.txt") != NULL;
    assert_true(found);
    desired_free(d1);
    free(f);
    for (int i = 0; i < 2; i++) {
        char *next = xasprintf("%s/%s", deep,
                               "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
        free(deep);
        deep = next;
        mkdir_rel(deep);
    }
    f = xasprintf("%s/file.txt", deep);
    write_rel(f, "deeper\n", 0644);
    struct loaded l;
    char *root = path_of("a");
    const struct bottle *b = load(&l, root, "web");
    struct desired_opts o = opts(root);
    struct diag_list dl;
    diag_list_init(&dl);
    struct desired *r = NULL;
    assert_int_equal(desired_bottle(b, &o, &dl, &r), BD_E_PARSE);
    assert_null(r);
    assert_non_null(strstr(dl.v[0].msg, "path too long"));
    diag_list_release(&dl);
    unload(&l);
    free(root);
    free(f);
    free(deep);
    char *cmd = xasprintf("rm -rf '%s/a/skills/notes/dddddddddddddddddddddddddddddddddddddddddddd"
                          "dddddddddddddddddd'",
                          tmpdir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void test_archive_refuses(void **state)
{
    (void)state;
    unsigned char *tar = NULL;
    size_t len = 0;
    char *err = NULL;
    static const char key[] =
        CA_PEM "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n";
    struct agent_files_in in = {.ca_cert_pem = key, .ca_cert_len = strlen(key)};
    assert_int_equal(agent_files_tar(&in, &tar, &len, &err), BD_E_INVAL);
    assert_non_null(strstr(err, "private key"));
    free(err);
    err = NULL;

    in = (struct agent_files_in){
        .ca_cert_pem = CA_PEM, .ca_cert_len = strlen(CA_PEM), .git_user_name = "bad\001name"};
    assert_int_equal(agent_files_tar(&in, &tar, &len, &err), BD_E_INVAL);
    free(err);
    err = NULL;

    /* a link in a skill is refused, as by the loader */
    mkdir_rel("linky");
    mkdir_rel("linky/skills");
    mkdir_rel("linky/skills/s");
    char *target = path_of("a/web.md");
    char *lnk = path_of("linky/skills/s/leak");
    assert_int_equal(symlink(target, lnk), 0);
    char *root = path_of("linky");
    const char *skills[] = {"s"};
    in = (struct agent_files_in){.ca_cert_pem = CA_PEM,
                                 .ca_cert_len = strlen(CA_PEM),
                                 .skills_root = root,
                                 .skills = skills,
                                 .n_skills = 1};
    assert_int_equal(agent_files_tar(&in, &tar, &len, &err), BD_E_INVAL);
    assert_non_null(strstr(err, "symbolic link"));
    free(err);
    err = NULL;
    skills[0] = "missing";
    assert_int_equal(agent_files_tar(&in, &tar, &len, &err), BD_E_INVAL);
    assert_non_null(strstr(err, "not found"));
    free(err);
    assert_null(tar);
    free(root);
    free(lnk);
    free(target);
}

/* ---- the gate ------------------------------------------------------------ */

#define GATE_ID "sha256:9999999999999999999999999999999999999999999999999999999999999999"

static void test_gate(void **state)
{
    (void)state;
    struct loaded l;
    char *root = xstrdup(EXAMPLES);
    const struct bottle *b = load(&l, root, "tools");
    struct desired_gate_repo repos[2] = {
        {"tools", b->repos[0].url, b->repos[0].host, b->repos[0].port, b->repos[0].host_key,
         "SHA256:aaaa"},
        {"ci-templates", b->repos[1].url, b->repos[1].host, b->repos[1].port, NULL, "SHA256:bbbb"},
    };
    struct desired_opts o = opts(root);
    o.gate_image = "localhost/bottled-gate:test";
    o.gate_image_id = GATE_ID;
    o.repos = repos;
    o.n_repos = 2;
    struct desired *d = compute(b, &o);
    assert_true(desired_has(d, ROLE_GATE));
    const struct desired_resource *g = &d->res[ROLE_GATE];
    const struct engine_container_spec *k = &g->container;
    assert_string_equal(g->name, "bottle-tools-gate");
    assert_string_equal(k->image, GATE_ID);
    assert_int_equal(k->n_endpoints, 1);
    assert_string_equal(k->endpoints[0].network, "bottle-tools-int");
    assert_string_equal(k->endpoints[0].ipv4, "10.213.0.3");
    assert_true(k->cap_drop_all);
    assert_int_equal(k->cap_add.n, 0);
    assert_true(k->no_new_privileges);
    assert_int_equal(k->cmd.n, 0); /* the image's entrypoint */
    assert_string_equal(engine_kvs_get(&k->labels, LABEL_ROLE), "gate");
    assert_string_equal(engine_kvs_get(&k->labels, LABEL_SPEC_HASH), g->spec_hash);
    assert_string_equal(
        d->gate_config,
        "{\"proxy\":\"10.213.0.2:9099\",\"repos\":[{\"host\":\"gitea.example.com\","
        "\"host_key\":\"ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIFZHv0KzwIz/wqv7TTr0JoJdTJRGABs1vK89dGYFaKTf\",\"name\":"
        "\"tools\",\"port\":30009,\"url\":\"ssh://git@gitea.example.com:30009/team/"
        "tools.git\"},{\"host\":\"gitea.example.com\",\"host_key\":\"\",\"name\":\"ci-"
        "templates\",\"port\":30009,\"url\":\"ssh://git@gitea.example.com:30009/team/"
        "ci-templates.git\"}]}");
    /* the agent's gitconfig rewrites both urls to the gate */
    assert_non_null(memmem(d->agent_tar, d->agent_tar_len,
                           "[url \"http://gate:8080/tools.git\"]\n\tinsteadOf = "
                           "\"ssh://git@gitea.example.com:30009/team/tools.git\"\n",
                           strlen("[url \"http://gate:8080/tools.git\"]\n\tinsteadOf = "
                                  "\"ssh://git@gitea.example.com:30009/team/tools.git\"\n")));
    assert_non_null(memmem(d->agent_tar, d->agent_tar_len,
                           "[url \"http://gate:8080/ci-templates.git\"]",
                           strlen("[url \"http://gate:8080/ci-templates.git\"]")));
    /* a new key, a learned host key: the gate changes, nothing else */
    repos[1].fingerprint = "SHA256:cccc";
    struct desired *d2 = compute(b, &o);
    assert_string_not_equal(d2->res[ROLE_GATE].spec_hash, g->spec_hash);
    assert_string_equal(d2->res[ROLE_AGENT].spec_hash, d->res[ROLE_AGENT].spec_hash);
    assert_string_equal(d2->res[ROLE_PROXY].spec_hash, d->res[ROLE_PROXY].spec_hash);
    desired_free(d2);
    repos[1].host_key = "ssh-ed25519 AAAAlearned";
    d2 = compute(b, &o);
    assert_non_null(strstr(d2->gate_config, "AAAAlearned"));
    assert_string_not_equal(d2->res[ROLE_GATE].spec_hash, g->spec_hash);
    desired_free(d2);
    /* no private key text anywhere in a spec */
    for (size_t i = 0; i < d->n; i++)
        if (desired_has(d, i))
            assert_null(strstr(d->res[i].spec, "PRIVATE KEY"));
    desired_free(d);
    unload(&l);
    free(root);
}

/* ---- refusals ---------------------------------------------------------- */

static void expect_refusal(const struct bottle *b, const char *root, const char *what)
{
    struct desired_opts o = opts(root);
    struct diag_list d;
    struct desired *r = NULL;
    diag_list_init(&d);
    assert_int_equal(desired_bottle(b, &o, &d, &r), BD_E_PARSE);
    assert_null(r);
    assert_true(d.n_errors >= 1);
    int found = 0;
    for (size_t i = 0; i < d.n; i++) {
        assert_string_equal(d.v[i].bottle, b->name);
        found |= strstr(d.v[i].msg, what) != NULL;
    }
    if (!found)
        fail_msg("no error about '%s' for %s: %s", what, b->name, diag_format(&d.v[0]));
    diag_list_release(&d);
}

static void test_refusals(void **state)
{
    (void)state;
    struct loaded l;
    char *root = xstrdup(EXAMPLES);
    const struct bottle *b = load(&l, root, "tools");
    expect_refusal(b, root, "gate image"); /* repos need the gate image's id */
    long i = manifest_set_find(&l.set, "docs-writer");
    assert_true(i >= 0);
    expect_refusal(l.set.bottles[i], root, "transparent");
    /* abstract: not a bottle to run */
    i = manifest_set_find(&l.set, "claude");
    struct desired_opts o = opts(root);
    struct diag_list d;
    struct desired *r = NULL;
    diag_list_init(&d);
    assert_int_equal(desired_bottle(l.set.bottles[i], &o, &d, &r), BD_E_INVAL);
    assert_null(r);
    diag_list_release(&d);
    unload(&l);
    free(root);

    /* the parser already refuses supervise: true; desired refuses it too */
    root = path_of("plain");
    b = load(&l, root, "plain");
    struct bottle sup = *b;
    sup.supervise = 1;
    expect_refusal(&sup, root, "supervise");

    /* bad options are errors too, each named */
    o = opts(root);
    o.instance = "XYZ";
    o.name_prefix = "-bad";
    o.int_subnet = "10.213.0.1/28";
    o.egr_subnet = "10.213.0.0/24";
    diag_list_init(&d);
    assert_int_equal(desired_bottle(&sup, &o, &d, &r), BD_E_PARSE);
    assert_int_equal(d.n_errors, 5); /* supervise, instance, prefix, both subnets */
    diag_list_release(&d);
    unload(&l);
    free(root);
}

/* ---- subnets ----------------------------------------------------------- */

static void test_subnet_alloc(void **state)
{
    (void)state;
    char out[3][DESIRED_SUBNET_STR_MAX];

    assert_int_equal(subnet_alloc(DESIRED_SUBNET_POOL, NULL, 0, 2, out), 0);
    assert_string_equal(out[0], "10.213.0.0/28");
    assert_string_equal(out[1], "10.213.0.16/28");

    /* ours and others', unaligned, IPv6 and NULL skipped */
    const char *used[] = {"10.213.0.0/28", NULL, "fd00::/64", "10.213.0.20/30", "10.213.0.48/28",
                          "192.168.0.0/16"};
    assert_int_equal(subnet_alloc(DESIRED_SUBNET_POOL, used, 6, 3, out), 0);
    assert_string_equal(out[0], "10.213.0.32/28");
    assert_string_equal(out[1], "10.213.0.64/28");
    assert_string_equal(out[2], "10.213.0.80/28");

    /* a /16 covering the start of the pool, listed after a narrower one */
    const char *wide[] = {"10.212.0.16/28", "10.212.0.0/16", "10.213.0.0/28"};
    assert_int_equal(subnet_alloc("10.212.0.0/15", wide, 3, 2, out), 0);
    assert_string_equal(out[0], "10.213.0.16/28");
    assert_string_equal(out[1], "10.213.0.32/28");
    /* one covering the whole pool */
    const char *all[] = {"10.0.0.0/8"};
    memset(out, 'x', sizeof(out));
    assert_int_equal(subnet_alloc(DESIRED_SUBNET_POOL, all, 1, 1, out), BD_E_LIMIT);
    assert_int_equal(out[0][0], 'x'); /* nothing written */

    /* exhausted: a /27 holds two /28s */
    const char *half[] = {"10.213.0.16/28"};
    assert_int_equal(subnet_alloc("10.213.0.0/27", half, 1, 1, out), 0);
    assert_string_equal(out[0], "10.213.0.0/28");
    assert_int_equal(subnet_alloc("10.213.0.0/27", half, 1, 2, out), BD_E_LIMIT);
    assert_int_equal(subnet_alloc("10.213.0.0/28", NULL, 0, 1, out), 0);

    /* the top of the address space */
    assert_int_equal(subnet_alloc("255.255.255.224/27", NULL, 0, 2, out), 0);
    assert_string_equal(out[1], "255.255.255.240/28");
    assert_int_equal(subnet_alloc("255.255.255.224/27", NULL, 0, 3, out), BD_E_LIMIT);

    /* deterministic: the order of used does not matter */
    const char *rev[] = {"192.168.0.0/16", "10.213.0.48/28", "10.213.0.20/30", "10.213.0.0/28"};
    assert_int_equal(subnet_alloc(DESIRED_SUBNET_POOL, rev, 4, 1, out), 0);
    assert_string_equal(out[0], "10.213.0.32/28");

    /* malformed */
    const char *bad[] = {"10.213.0.0"};
    assert_int_equal(subnet_alloc(DESIRED_SUBNET_POOL, bad, 1, 1, out), BD_E_INVAL);
    assert_int_equal(subnet_alloc("10.213.0.0/29", NULL, 0, 1, out), BD_E_INVAL);
    assert_int_equal(subnet_alloc("10.213.0.1/16", NULL, 0, 1, out), BD_E_INVAL);
    assert_int_equal(subnet_alloc("10.213.0.0/33", NULL, 0, 1, out), BD_E_INVAL);
    assert_int_equal(subnet_alloc("fd00::/64", NULL, 0, 1, out), BD_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resources_and_names),
        cmocka_unit_test(test_networks),
        cmocka_unit_test(test_proxy),
        cmocka_unit_test(test_agent_env_caps_limits),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_same_bottle_written_differently),
        cmocka_unit_test(test_what_changes_what),
        cmocka_unit_test(test_archive),
        cmocka_unit_test(test_archive_refuses),
        cmocka_unit_test(test_gate),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_subnet_alloc),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
