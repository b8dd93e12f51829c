/*
 * cmd_version.c - `bottled version`: versions and build options.
 *
 * Reports the version of every library linked in as the library itself
 * reports it at run time (not the headers we compiled against), so a bug
 * report says what actually ran.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <idn2.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <yaml.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "build_config.h"
#include "cmd.h"
#include "detect.h"
#include "watch_backend.h"

#if BOTTLED_HAVE_FSWATCH
#include <libfswatch/c/libfswatch.h>
#endif

int cmd_version(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc)
        return usage_error(cmd, "takes no arguments");
    char pcre2_ver[64];
    pcre2_config(PCRE2_CONFIG_VERSION, pcre2_ver);
    const char *fswatch = "not built";
#if BOTTLED_HAVE_FSWATCH
    fswatch = fsw_init_library() == FSW_OK ? "linked" : "linked, failed to initialise";
#endif
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "version", BOTTLED_VERSION);
    cJSON_AddStringToObject(v, "build_type", BOTTLED_BUILD_TYPE);
    cJSON_AddBoolToObject(v, "sanitizers",
                          BOTTLED_SANITIZE_STR[0] == 'O' && BOTTLED_SANITIZE_STR[1] == 'N');
    cJSON *libs = cJSON_AddObjectToObject(v, "libraries");
    cJSON_AddStringToObject(libs, "libyaml", yaml_get_version_string());
    cJSON_AddStringToObject(libs, "sqlite3", sqlite3_libversion());
    cJSON_AddStringToObject(libs, "openssl", OpenSSL_version(OPENSSL_VERSION));
    cJSON_AddStringToObject(libs, "libcurl", curl_version_info(CURLVERSION_NOW)->version);
    cJSON_AddStringToObject(libs, "cjson", cJSON_Version());
    cJSON_AddStringToObject(libs, "pcre2", pcre2_ver);
    cJSON_AddStringToObject(libs, "libidn2", idn2_check_version(NULL));
    cJSON_AddStringToObject(libs, "libfswatch", fswatch);
    cJSON *watch = cJSON_AddObjectToObject(v, "watch");
    cJSON *backends = cJSON_AddArrayToObject(watch, "backends");
    for (size_t i = 0; watch_backend_compiled(i); i++)
        cJSON_AddItemToArray(backends, cJSON_CreateString(watch_backend_compiled(i)));
    cJSON_AddStringToObject(watch, "default", watch_backend_compiled(0));
    cJSON *scanner = cJSON_AddObjectToObject(v, "scanner");
    cJSON_AddStringToObject(scanner, "engine", "aho-corasick prefilter");
    cJSON_AddNumberToObject(scanner, "rules", (double)detect_rule_count());

    if (o->json) {
        char *s = cJSON_Print(v);
        printf("%s\n", s);
        free(s);
    } else {
        printf("bottled %s (%s%s)\n", BOTTLED_VERSION, BOTTLED_BUILD_TYPE,
               cJSON_IsTrue(cJSON_GetObjectItem(v, "sanitizers")) ? ", asan+ubsan" : "");
        printf("watch backends:");
        for (size_t i = 0; watch_backend_compiled(i); i++)
            printf("%s %s%s", i ? "," : "", watch_backend_compiled(i), i ? "" : " (default)");
        printf("\n");
        printf("credential scanner: aho-corasick prefilter, %zu rules\n", detect_rule_count());
        printf("libraries:\n");
        for (cJSON *it = libs->child; it; it = it->next)
            printf("  %-10s %s\n", it->string, it->valuestring);
    }
    cJSON_Delete(v);
    return EXIT_OK;
}
