/* bench/loadgen.c - a small HTTP/1.1 load generator on libcurl's multi interface.
 *
 * wrk and h2load cannot go through a CONNECT proxy; this can.  C keep-alive
 * connections, one request in flight on each; HTTPS URLs through --proxy use
 * CONNECT (with --cacert trusting the proxy's bumped certificates).
 *
 *   loadgen --url URL [--proxy http://host:port] [--cacert FILE]
 *           [--resolve host:port:addr]... [--header 'Name: value']...
 *           [--body FILE] [--connections 16] [--duration 10] [--warmup 0]
 *           [--rate R] [--json]
 *
 * Closed loop (--rate 0, the default): every connection sends its next
 * request as soon as the previous one is done.  Open loop (--rate R): request
 * starts are scheduled at R per second in total, whether or not earlier ones
 * have finished; a start that finds all connections busy waits for one and
 * is counted as "late" when it leaves more than 5 ms behind its schedule
 * (the rate is too high for the connection count; start times themselves
 * have about 1 ms granularity, curl_multi_poll's timeout unit).
 * Latency is CURLINFO_TOTAL_TIME_T of each request.  Requests finishing in
 * the first --warmup seconds are not counted.  Errors are curl failures and
 * non-2xx answers.  Prints one line:
 *
 *   requests N errors E rps X p50_us A p99_us B max_us C p90_us D mean_us M
 *   connects K late L bytes Z
 *
 * (one line; the first fields are fixed, more may be appended) or, with
 * --json, the same keys as one JSON object.  Exit status 0 when every
 * request succeeded, 1 when some failed, 2 on usage errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    CURL *easy;
    bool busy;
};

struct lat_array {
    int64_t *v;
    size_t n, cap;
};

static struct {
    const char *url, *proxy, *cacert, *body_file;
    struct curl_slist *resolve, *headers;
    long connections;
    double duration, warmup, rate;
    bool json;
} opt = {.connections = 16, .duration = 10.0};

static char *body;
static size_t body_len;
static uint64_t bytes_in;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    bytes_in += size * nmemb;
    return size * nmemb;
}

static void lat_push(struct lat_array *a, int64_t v)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 65536;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) {
            perror("loadgen: realloc");
            exit(2);
        }
    }
    a->v[a->n++] = v;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Nearest-rank percentile of a sorted array. */
static int64_t pct(const struct lat_array *a, double p)
{
    if (a->n == 0)
        return 0;
    size_t rank = (size_t)((p / 100.0) * (double)a->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > a->n)
        rank = a->n;
    return a->v[rank - 1];
}

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --url URL [--proxy http://host:port] [--cacert FILE]\n"
               "               [--resolve host:port:addr]... [--header 'Name: value']...\n"
               "               [--body FILE] [--connections 16] [--duration 10]\n"
               "               [--warmup 0] [--rate R] [--json]\n");
}

static double num_arg(const char *name, const char *s, double min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min) {
        fprintf(stderr, "loadgen: bad --%s: %s\n", name, s);
        exit(2);
    }
    return v;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            perror("loadgen: malloc");
            exit(2);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f)) {
        fprintf(stderr, "loadgen: %s: read error\n", path);
        exit(2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"proxy", required_argument, NULL, 'x'},
        {"cacert", required_argument, NULL, 'k'},
        {"resolve", required_argument, NULL, 'r'},
        {"header", required_argument, NULL, 'H'},
        {"body", required_argument, NULL, 'b'},
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'R'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "u:x:k:r:H:b:c:d:w:R:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            opt.url = optarg;
            break;
        case 'x':
            opt.proxy = optarg;
            break;
        case 'k':
            opt.cacert = optarg;
            break;
        case 'r':
            opt.resolve = curl_slist_append(opt.resolve, optarg);
            break;
        case 'H':
            opt.headers = curl_slist_append(opt.headers, optarg);
            break;
        case 'b':
            opt.body_file = optarg;
            break;
        case 'c':
            opt.connections = (long)num_arg("connections", optarg, 1);
            break;
        case 'd':
            opt.duration = num_arg("duration", optarg, 0.001);
            break;
        case 'w':
            opt.warmup = num_arg("warmup", optarg, 0);
            break;
        case 'R':
            opt.rate = num_arg("rate", optarg, 0);
            break;
        case 'j':
            opt.json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (!opt.url || optind != argc || opt.connections > 100000) {
        usage(stderr);
        exit(2);
    }
    if (opt.body_file)
        body = read_file(opt.body_file, &body_len);
}

static CURL *make_easy(void)
{
    CURL *e = curl_easy_init();
    if (!e) {
        fprintf(stderr, "loadgen: curl_easy_init failed\n");
        exit(2);
    }
    curl_easy_setopt(e, CURLOPT_URL, opt.url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    if (opt.proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, opt.proxy);
    if (opt.cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, opt.cacert);
    if (opt.resolve)
        curl_easy_setopt(e, CURLOPT_RESOLVE, opt.resolve);
    if (opt.headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, opt.headers);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    return e;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "loadgen: curl_global_init failed\n");
        return 2;
    }
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, opt.connections);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, opt.connections);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, opt.connections);
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);

    long nslots = opt.connections;
    struct slot *slots = calloc((size_t)nslots, sizeof *slots);
    CURL **free_list = calloc((size_t)nslots, sizeof *free_list);
    if (!slots || !free_list) {
        perror("loadgen: calloc");
        return 2;
    }
    long nfree = 0;
    for (long i = 0; i < nslots; i++) {
        slots[i].easy = make_easy();
        curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, &slots[i]);
        free_list[nfree++] = slots[i].easy;
    }

    struct lat_array lat = {0};
    uint64_t requests = 0, errors = 0, late = 0, connects = 0;
    unsigned err_shown = 0;
    const int64_t t0 = now_us();
    const int64_t t_warm = t0 + (int64_t)(opt.warmup * 1e6);
    const int64_t t_end = t_warm + (int64_t)(opt.duration * 1e6);
    const int64_t t_abort = t_end + 60 * 1000000LL;
    const double interval_us = opt.rate > 0 ? 1e6 / opt.rate : 0;
    double next_start = (double)t0; /* open loop: the next scheduled start */
    int64_t t_last = t0;
    long running = 0;

    for (;;) {
        int64_t now = now_us();
        bool sending = now < t_end;
        /* Start requests: every free connection (closed loop) or every due slot. */
        while (sending && nfree > 0) {
            if (interval_us > 0) {
                if ((double)now < next_start)
                    break;
                if ((double)now - next_start > 5000.0)
                    late++;
                next_start += interval_us;
            }
            CURL *e = free_list[--nfree];
            void *priv = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            ((struct slot *)priv)->busy = true;
            curl_multi_add_handle(multi, e);
            running++;
        }
        if (!sending && running == 0)
            break;
        if (now > t_abort) {
            fprintf(stderr, "loadgen: %ld requests still running 60 s after the end, giving up\n",
                    running);
            errors += (uint64_t)running;
            break;
        }

        int still;
        curl_multi_perform(multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *e = m->easy_handle;
            CURLcode rc = m->data.result;
            long code = 0, nconn = 0;
            curl_off_t total = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
            curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total);
            curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nconn);
            curl_multi_remove_handle(multi, e);
            running--;
            int64_t done = now_us();
            if (done >= t_warm) {
                t_last = done;
                requests++;
                connects += (uint64_t)nconn;
                lat_push(&lat, (int64_t)total);
                if (rc != CURLE_OK || code < 200 || code > 299) {
                    errors++;
                    if (err_shown++ < 5)
                        fprintf(stderr, "loadgen: request failed: %s (HTTP %ld)\n",
                                rc != CURLE_OK ? curl_easy_strerror(rc) : "status", code);
                }
            }
            void *priv = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            ((struct slot *)priv)->busy = false;
            free_list[nfree++] = e;
        }

        /* Wait for activity, or for the next scheduled start / the end. */
        int64_t wait_us = 100000;
        now = now_us();
        if (now < t_end && nfree > 0) {
            int64_t until = interval_us > 0 ? (int64_t)next_start - now : 0;
            if (until < wait_us)
                wait_us = until;
        }
        if (now < t_end && t_end - now < wait_us)
            wait_us = t_end - now;
        if (wait_us > 0) {
            int ms = (int)((wait_us + 999) / 1000);
            curl_multi_poll(multi, NULL, 0, ms, NULL);
        }
    }

    /* The measured window: from the end of the warm-up to the end of the run or
     * the last completion, whichever is later. */
    int64_t window = (t_last > t_end ? t_last : t_end) - t_warm;
    if (window <= 0)
        window = 1;
    qsort(lat.v, lat.n, sizeof *lat.v, cmp_i64);
    double sum = 0;
    for (size_t i = 0; i < lat.n; i++)
        sum += (double)lat.v[i];
    double mean = lat.n ? sum / (double)lat.n : 0;
    double rps = (double)requests * 1e6 / (double)window;
    int64_t p50 = pct(&lat, 50), p90 = pct(&lat, 90), p99 = pct(&lat, 99);
    int64_t maxv = lat.n ? lat.v[lat.n - 1] : 0;

    if (opt.json)
        printf("{\"requests\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"rps\":%.1f,\"p50_us\":%" PRId64
               ",\"p99_us\":%" PRId64 ",\"max_us\":%" PRId64 ",\"p90_us\":%" PRId64
               ",\"mean_us\":%.1f,\"connects\":%" PRIu64 ",\"late\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"window_s\":%.3f,\"connections\":%ld,\"rate\":%.1f}\n",
               requests, errors, rps, p50, p99, maxv, p90, mean, connects, late, bytes_in,
               (double)window / 1e6, opt.connections, opt.rate);
    else
        printf("requests %" PRIu64 " errors %" PRIu64 " rps %.1f p50_us %" PRId64 " p99_us %" PRId64
               " max_us %" PRId64 " p90_us %" PRId64 " mean_us %.1f connects %" PRIu64
               " late %" PRIu64 " bytes %" PRIu64 "\n",
               requests, errors, rps, p50, p99, maxv, p90, mean, connects, late, bytes_in);

    for (long i = 0; i < nslots; i++) {
        if (slots[i].busy)
            curl_multi_remove_handle(multi, slots[i].easy);
        curl_easy_cleanup(slots[i].easy);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(opt.resolve);
    curl_slist_free_all(opt.headers);
    curl_global_cleanup();
    free(lat.v);
    free(slots);
    free(free_list);
    free(body);
    return errors ? 1 : 0;
}
