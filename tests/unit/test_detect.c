/*
 * test_detect.c - the shipped credential rules and the plain matcher.
 *
 * Token-shaped strings are assembled at run time from a prefix and a
 * repeated filler, so this file holds no string a secret scanner (ours or a
 * forge's push protection) would flag.  Every rule in lib/detectors.rules
 * must appear in both tables below; test_every_rule_is_tested fails
 * otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detect.h"
#include "xalloc.h"

/* prefix + n characters cycling through fill (NULL fill: no run). */
static char *mk(const char *prefix, const char *fill, size_t n)
{
    size_t pl = strlen(prefix), fl = fill ? strlen(fill) : 0;
    char *s = xmalloc(pl + n + 1);

    memcpy(s, prefix, pl);
    for (size_t i = 0; i < n; i++)
        s[pl + i] = fill[i % fl];
    s[pl + n] = '\0';
    return s;
}

#define ALNUM  "aZ3kQ9xT"
#define B64URL "aZ3-k_Q9"
#define UPPER  "Q7ZX3K9W"
#define HEX    "3fa9c07b"
#define B64    "aZ3+k/Q9"
#define PATH   "T0A/B9z/"
#define JWT_H  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define JWT_P  "eyJzdWIiOiIxMjM0NTY3ODkwIn0"

struct example {
    const char *rule;
    const char *prefix;
    const char *fill;
    size_t n;
};

static const struct example positives[] = {
    {"github_token", "ghp_", ALNUM, 36},
    {"github_token", "gho_", ALNUM, 36},
    {"github_token", "ghu_", ALNUM, 36},
    {"github_token", "ghs_", ALNUM, 36},
    {"github_token", "ghr_", ALNUM, 36},
    {"github_pat", "github_pat_", "aZ3_kQ9x", 82},
    {"gitlab_pat", "glpat-", B64URL, 20},
    {"gitlab_pat", "glpat-", B64URL, 40},
    {"anthropic_key", "sk-ant-api03-", B64URL, 95},
    {"anthropic_key", "sk-ant-oat01-", B64URL, 40},
    {"openai_key", "sk-", ALNUM, 48},
    {"openai_key", "sk-proj-", B64URL, 150},
    {"openai_key", "sk-svcacct-", B64URL, 60},
    {"aws_access_key_id", "AKIA", UPPER, 16},
    {"aws_access_key_id", "ASIA", UPPER, 16},
    {"slack_token", "xoxb-", "12345-aZ", 30},
    {"slack_token", "xoxp-", "9-a", 10},
    {"slack_token", "xoxs-", B64URL, 50},
    {"stripe_live_key", "sk_live_", ALNUM, 24},
    {"stripe_live_key", "rk_live_", ALNUM, 99},
    {"google_api_key", "AIza", B64URL, 35},
    {"npm_token", "npm_", ALNUM, 36},
    {"pem_private_key", "-----BEGIN PRIVATE KEY-----", NULL, 0},
    {"pem_private_key", "-----BEGIN RSA PRIVATE KEY-----", NULL, 0},
    {"pem_private_key", "-----BEGIN EC PRIVATE KEY-----", NULL, 0},
    {"pem_private_key", "-----BEGIN OPENSSH PRIVATE KEY-----", NULL, 0},
    {"pem_private_key", "-----BEGIN ENCRYPTED PRIVATE KEY-----", NULL, 0},
    {"gitlab_deploy_token", "gldt-", B64URL, 20},
    {"gitlab_runner_token", "glrt-", B64URL, 30},
    {"gitlab_trigger_token", "glptt-", HEX, 40},
    {"openrouter_key", "sk-or-v1-", HEX, 64},
    {"xai_key", "xai-", ALNUM, 80},
    {"groq_key", "gsk_", ALNUM, 52},
    {"huggingface_token", "hf_", ALNUM, 34},
    {"replicate_token", "r8_", ALNUM, 37},
    {"perplexity_key", "pplx-", ALNUM, 48},
    {"google_oauth_secret", "GOCSPX-", B64URL, 28},
    {"azure_storage_key", "AccountKey=", B64, 86},
    {"digitalocean_token", "dop_v1_", HEX, 64},
    {"digitalocean_token", "dor_v1_", HEX, 64},
    {"heroku_api_key", "HRKU-AA", B64URL, 58},
    {"tailscale_key", "tskey-auth-", B64URL, 40},
    {"vault_token", "hvs.", B64URL, 90},
    {"vault_token", "hvb.", B64URL, 140},
    {"doppler_token", "dp.pt.", ALNUM, 43},
    {"pulumi_token", "pul-", HEX, 40},
    {"databricks_token", "dapi", HEX, 32},
    {"supabase_pat", "sbp_", HEX, 40},
    {"slack_token", "xoxe-", B64URL, 40},
    {"slack_app_token", "xapp-", "1-A0-1-aZ", 40},
    {"slack_webhook", "hooks.slack.com/services/", PATH, 44},
    {"discord_webhook", "discord.com/api/webhooks/", "123/aZ-_", 80},
    {"stripe_test_key", "sk_test_", ALNUM, 24},
    {"stripe_test_key", "rk_test_", ALNUM, 99},
    {"stripe_webhook_secret", "whsec_", B64, 32},
    {"square_token", "sq0atp-", B64URL, 22},
    {"square_oauth_secret", "sq0csp-", B64URL, 43},
    {"square_access_token", "EAAA", B64URL, 60},
    {"pypi_token", "pypi-AgEIcHlwaS5vcmc", B64URL, 70},
    {"rubygems_key", "rubygems_", HEX, 48},
    {"dockerhub_pat", "dckr_pat_", B64URL, 27},
    {"sendgrid_key", "SG.", B64URL, 66},
    {"shopify_token", "shpat_", HEX, 32},
    {"shopify_token", "shpss_", HEX, 32},
    {"atlassian_api_token", "ATATT3", "xFfGF0=a", 180},
    {"linear_api_key", "lin_api_", ALNUM, 40},
    {"notion_token", "secret_", ALNUM, 43},
    {"sentry_token", "sntrys_", B64URL, 60},
    {"grafana_sa_token", "glsa_", "aZ3_kQ9x", 41},
    {"postman_api_key", "PMAK-", B64URL, 59},
    {"newrelic_user_key", "NRAK-", UPPER, 27},
    {"jwt", JWT_H "." JWT_P ".c2lnbmF0dXJlLWZha2U", NULL, 0},
    {"jwt", "eyJhbGciOiJub25lIn0." JWT_P ".", NULL, 0},
    {"age_secret_key", "AGE-SECRET-KEY-1", UPPER, 58},
};

/* Near misses: each must match nothing at all. */
static const struct example negatives[] = {
    {"github_token", "ghp_", ALNUM, 35},
    {"github_token", "ghp_", ALNUM, 37}, /* longer run: not this format */
    {"github_token", "ghx_", ALNUM, 36},
    {"github_token", "Ghp_", ALNUM, 36},
    {"github_token", "xghp_", ALNUM, 36}, /* inside a word */
    {"github_token", "ghp_", "aZ3-", 36},
    {"github_pat", "github_pat_", "aZ3_kQ9x", 81},
    {"github_pat", "github_pat_", "aZ3_kQ9x", 83},
    {"gitlab_pat", "glpat-", B64URL, 19},
    {"gitlab_pat", "glpat_", B64URL, 20},
    {"anthropic_key", "sk-ant-", "aZ3", 20},
    {"anthropic_key", "disk-ant-", B64URL, 40},
    {"openai_key", "sk-", ALNUM, 31},
    {"openai_key", "task-", B64URL, 60},
    {"openai_key", "risk-", "assessment-", 44},
    {"openai_key", "sk-", "a.b", 40},
    {"aws_access_key_id", "AKIA", UPPER, 15},
    {"aws_access_key_id", "AKIA", UPPER, 17},
    {"aws_access_key_id", "AKIA", "q7zx3k9w", 16},
    {"aws_access_key_id", "AXIA", UPPER, 16},
    {"aws_access_key_id", "XAKIA", UPPER, 16},
    {"slack_token", "xoxb-", "12345", 9},
    {"slack_token", "xoxz-", B64URL, 30},
    {"stripe_live_key", "sk_live_", ALNUM, 23},
    {"stripe_live_key", "pk_live_", ALNUM, 40},
    {"google_api_key", "AIza", B64URL, 34},
    {"google_api_key", "AIza", B64URL, 36},
    {"google_api_key", "aiza", B64URL, 35},
    {"npm_token", "npm_", ALNUM, 35},
    {"npm_token", "npm_", ALNUM, 37},
    {"pem_private_key", "-----BEGIN CERTIFICATE-----", NULL, 0},
    {"pem_private_key", "-----BEGIN PUBLIC KEY-----", NULL, 0},
    {"pem_private_key", "-----BEGIN RSA PRIVATE KEY", NULL, 0},
    {"pem_private_key", "-----BEGINPRIVATE KEY-----", NULL, 0},
    {"pem_private_key", "-----BEGIN rsa PRIVATE KEY-----", NULL, 0},
    {"gitlab_deploy_token", "gldt-", B64URL, 19},
    {"gitlab_runner_token", "glrt-", B64URL, 19},
    {"gitlab_trigger_token", "xglptt-", B64URL, 30},
    {"openrouter_key", "sk-or-v1-", HEX, 20}, /* too short for openai_key too */
    {"xai_key", "xai-", ALNUM, 59},
    {"xai_key", "maxai-", ALNUM, 80},
    {"groq_key", "gsk_", ALNUM, 51},
    {"huggingface_token", "hf_", ALNUM, 33},
    {"huggingface_token", "hf_", ALNUM, 35},
    {"replicate_token", "r8_", ALNUM, 36},
    {"perplexity_key", "pplx-", ALNUM, 39},
    {"google_oauth_secret", "GOCSPX-", B64URL, 27},
    {"azure_storage_key", "AccountKey=", B64, 85},
    {"digitalocean_token", "dop_v2_", HEX, 64},
    {"digitalocean_token", "dop_v1_", HEX, 63},
    {"heroku_api_key", "HRKU-AB", B64URL, 58},
    {"tailscale_key", "tskey-", B64URL, 29},
    {"vault_token", "hvx.", B64URL, 90},
    {"vault_token", "hvs.", B64URL, 23},
    {"doppler_token", "dp.xt.", ALNUM, 43},
    {"pulumi_token", "pul-", ALNUM, 40},
    {"databricks_token", "dapi", HEX, 31},
    {"supabase_pat", "sbp_", HEX, 39},
    {"slack_app_token", "xapp-", B64URL, 19},
    {"slack_webhook", "hooks.slack.com/services/", PATH, 39},
    {"slack_webhook", "hooks.slack.com/service/", PATH, 44},
    {"discord_webhook", "discord.com/api/webhook/", "123/aZ-_", 80},
    {"stripe_test_key", "pk_test_", ALNUM, 40},
    {"stripe_test_key", "sk_test_", ALNUM, 23},
    {"stripe_webhook_secret", "whsec_", B64, 31},
    {"square_token", "sq0atp-", B64URL, 21},
    {"square_oauth_secret", "sq0csp-", B64URL, 44},
    {"square_access_token", "EAAB", B64URL, 60},
    {"square_access_token", "EAAA", B64URL, 61},
    {"pypi_token", "pypi-AgEIcHlwaS5vcmc", B64URL, 49},
    {"pypi_token", "pypi-AgEIcHlwaS5vcmX", B64URL, 70},
    {"rubygems_key", "rubygems_", HEX, 47},
    {"dockerhub_pat", "dckr_pat_", B64URL, 23},
    {"sendgrid_key", "SG.", B64URL, 65},
    {"sendgrid_key", "MSG.", B64URL, 66},
    {"shopify_token", "shpxx_", HEX, 32},
    {"shopify_token", "shpat_", ALNUM, 32},
    {"atlassian_api_token", "ATATT3", "xFfGF0=a", 149},
    {"linear_api_key", "lin_api_", ALNUM, 39},
    {"notion_token", "secret_", ALNUM, 42},
    {"notion_token", "secret_", "key_base", 43},
    {"sentry_token", "sntrya_", B64URL, 60},
    {"grafana_sa_token", "glsa_", "aZ3_kQ9x", 40},
    {"postman_api_key", "PMAK-", B64URL, 58},
    {"newrelic_user_key", "NRAK-", UPPER, 26},
    {"jwt", JWT_H, NULL, 0},                               /* header only */
    {"jwt", "eyJ0eXAiOiJKV1QifQ." JWT_P ".c2ln", NULL, 0}, /* no "alg" */
    {"jwt", JWT_H ".eyJ." JWT_P ".c2ln", NULL, 0},         /* four parts */
    {"jwt", JWT_H ".." JWT_P, NULL, 0},                    /* empty payload */
    {"age_secret_key", "AGE-SECRET-KEY-1", UPPER, 57},
    {"age_secret_key", "AGE-SECRET-KEY-2", UPPER, 58},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_rules_load(void **state)
{
    (void)state;
    /* Loading aborts on a malformed line, so reaching here proves it parses. */
    assert_true(detect_rule_count() >= 30);
    for (size_t i = 0; i < detect_rule_count(); i++) {
        const char *id = detect_rule_id(i);
        assert_non_null(id);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(id, detect_rule_id(j));
    }
    assert_null(detect_rule_id(detect_rule_count()));
}

static void test_every_rule_is_tested(void **state)
{
    (void)state;
    for (size_t i = 0; i < detect_rule_count(); i++) {
        const char *id = detect_rule_id(i);
        int pos = 0, neg = 0;
        for (size_t j = 0; j < N(positives); j++)
            pos += strcmp(positives[j].rule, id) == 0;
        for (size_t j = 0; j < N(negatives); j++)
            neg += strcmp(negatives[j].rule, id) == 0;
        if (!pos || !neg)
            fail_msg("rule '%s' needs a positive and a negative example", id);
    }
}

static void test_positives(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(positives); i++) {
        const struct example *e = &positives[i];
        char *tok = mk(e->prefix, e->fill, e->n);
        size_t tl = strlen(tok);
        struct detect_match m = {0};

        /* Alone, and in the places a token usually sits. */
        if (detect_scan(tok, tl, &m) != 1)
            fail_msg("positive %zu (%s) not found alone", i, e->rule);
        assert_string_equal(m.detector, e->rule);
        assert_int_equal(m.off, 0);
        assert_int_equal(m.len, tl);

        static const char *const around[][2] = {
            {"token=", "&next=1"},
            {"{\"key\": \"", "\"}"},
            {"Authorization: Bearer ", "\r\n"},
            {"export TOKEN='", "'"},
            {"https://x:", "@example.com/"},
            {"q=%3D", "%26"},        /* URL-encoded '=' before it */
            {"\"line one\\n", "\""}, /* JSON string, second line */
            {"\\u0022", "\\u0022"},
        };
        for (size_t k = 0; k < N(around); k++) {
            char *s = xasprintf("%s%s%s", around[k][0], tok, around[k][1]);
            memset(&m, 0, sizeof(m));
            if (detect_scan(s, strlen(s), &m) != 1)
                fail_msg("%s not found in context %zu", e->rule, k);
            assert_string_equal(m.detector, e->rule);
            assert_int_equal(m.off, strlen(around[k][0]));
            assert_int_equal(m.len, tl);
            free(s);
        }
        free(tok);
    }
}

static void test_negatives(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(negatives); i++) {
        const struct example *e = &negatives[i];
        char *tok = mk(e->prefix, e->fill, e->n);
        struct detect_match m = {0};

        if (detect_scan(tok, strlen(tok), &m) != 0)
            fail_msg("negative %zu (%s%s) matched %s at %zu", i, e->prefix, e->fill ? "..." : "",
                     m.detector, m.off);
        free(tok);
    }
}

static void test_not_terminated_and_embedded_nul(void **state)
{
    (void)state;
    char *tok = mk("ghp_", ALNUM, 36);
    struct detect_match m;

    /* n bounds the scan: one byte short is a 35-character run. */
    assert_int_equal(detect_scan(tok, 39, &m), 0);
    assert_int_equal(detect_scan(tok, 40, NULL), 1);
    tok[20] = '\0';
    assert_int_equal(detect_scan(tok, 40, &m), 0);
    assert_int_equal(detect_scan(NULL, 0, &m), 0);
    assert_int_equal(detect_scan("", 0, &m), 0);
    free(tok);
}

static void test_leftmost_wins(void **state)
{
    (void)state;
    char *gh = mk("ghp_", ALNUM, 36);
    char *aws = mk("AKIA", UPPER, 16);
    char *s1 = xasprintf("a=%s b=%s", gh, aws);
    char *s2 = xasprintf("a=%s b=%s", aws, gh);
    struct detect_match m;

    assert_int_equal(detect_scan(s1, strlen(s1), &m), 1);
    assert_string_equal(m.detector, "github_token");
    assert_int_equal(m.off, 2);
    assert_int_equal(detect_scan(s2, strlen(s2), &m), 1);
    assert_string_equal(m.detector, "aws_access_key_id");
    assert_int_equal(m.off, 2);
    free(gh);
    free(aws);
    free(s1);
    free(s2);
}

static void test_pem_in_file(void **state)
{
    (void)state;
    const char *s = "key: |\n  -----BEGIN OPENSSH PRIVATE KEY-----\n  b3BlbnNzaC1rZXktdjEAAAAA\n";
    struct detect_match m;

    assert_int_equal(detect_scan(s, strlen(s), &m), 1);
    assert_string_equal(m.detector, "pem_private_key");
    assert_int_equal(m.off, 9);
    assert_int_equal(m.len, strlen("-----BEGIN OPENSSH PRIVATE KEY-----"));
}

static void test_ordinary_text_is_clean(void **state)
{
    (void)state;
    static const char *const clean[] = {
        "image: localhost/bottled-agent:latest",
        "url: ssh://git@gitea.example.com:30009/team/tools.git",
        "host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsab",
        "sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "the task-runner-for-the-integration-test-suite-is-slow",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUF...\n-----END CERTIFICATE-----",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
    };
    for (size_t i = 0; i < N(clean); i++) {
        struct detect_match m;
        if (detect_scan(clean[i], strlen(clean[i]), &m))
            fail_msg("'%s' matched %s", clean[i], m.detector);
    }
}

static void test_mask_reveals_at_most_four(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(positives); i++) {
        const struct example *e = &positives[i];
        char *tok = mk(e->prefix, e->fill, e->n);
        char *s = xasprintf("secret: %s\n", tok);
        struct detect_match m;

        assert_int_equal(detect_scan(s, strlen(s), &m), 1);
        char *mask = detect_mask(s, strlen(s), &m);
        size_t show = strlen(tok) / 4 < 4 ? strlen(tok) / 4 : 4; /* a quarter, at most 4 */
        char *want = xasprintf("%.*s... (%zu chars)", (int)show, tok, strlen(tok));
        assert_string_equal(mask, want);
        /* No five consecutive bytes of the secret survive. */
        for (size_t k = 0; k + 5 <= strlen(tok); k++)
            assert_null(memmem(mask, strlen(mask), tok + k, 5));
        free(want);
        free(mask);
        free(s);
        free(tok);
    }
}

static void test_mask_edges(void **state)
{
    (void)state;
    char *p;
    struct detect_match bad = {"x", 10, 50, 0};

    p = detect_mask("ghp_abcdefghijkl", 16, NULL); /* whole value */
    assert_string_equal(p, "ghp_... (16 chars)");
    free(p);
    p = detect_mask("abcdef", 6, NULL); /* short: a quarter */
    assert_string_equal(p, "a... (6 chars)");
    free(p);
    p = detect_mask("abc", 3, NULL);
    assert_string_equal(p, "... (3 chars)");
    free(p);
    p = detect_mask("\x01\xff\n\tabcdefghijkl", 16, NULL);
    assert_string_equal(p, "????... (16 chars)");
    free(p);
    p = detect_mask("short", 5, &bad); /* match outside the value: whole value */
    assert_string_equal(p, "s... (5 chars)");
    free(p);
    p = detect_mask(NULL, 0, NULL);
    assert_string_equal(p, "... (0 chars)");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_load),
        cmocka_unit_test(test_every_rule_is_tested),
        cmocka_unit_test(test_positives),
        cmocka_unit_test(test_negatives),
        cmocka_unit_test(test_not_terminated_and_embedded_nul),
        cmocka_unit_test(test_leftmost_wins),
        cmocka_unit_test(test_pem_in_file),
        cmocka_unit_test(test_ordinary_text_is_clean),
        cmocka_unit_test(test_mask_reveals_at_most_four),
        cmocka_unit_test(test_mask_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
