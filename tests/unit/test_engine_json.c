/*
 * test_engine_json.c - the docker engine backend's parsers on responses
 * recorded from Podman 4.3.1 and Docker 20.10.24 (engine-here.md sections 3
 * and 6, shortened to the fields we read): lists, inspect, error bodies,
 * filter encoding, the exec stream demultiplexer, the path stat header,
 * API version negotiation.  No engine is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "engine_docker.h"
#include "err.h"

#define S(lit) (lit), sizeof(lit) - 1

/* engine-here.md section 3, row 4 (podman network list), plus a container */
static const char podman_networks[] =
    "[{\"Name\":\"bottle-int\",\"Id\":\"788d1f25d1cef043743f3d0c09da22e593f97fcb404da1a0efa20dc3"
    "859e01c9\",\"Created\":\"2026-11-24T01:15:31.286393923Z\",\"Scope\":\"local\",\"Driver\":"
    "\"bridge\",\"EnableIPv6\":false,\"IPAM\":{\"Driver\":\"default\",\"Options\":{\"driver\":"
    "\"host-local\"},\"Config\":[{\"Subnet\":\"10.89.0.0/24\",\"Gateway\":\"10.89.0.1\"}]},"
    "\"Internal\":true,\"Attachable\":false,\"Ingress\":false,\"ConfigFrom\":{\"Network\":\"\"},"
    "\"ConfigOnly\":false,\"Containers\":{\"313e4254f658\":{\"Name\":\"tender_bardeen\","
    "\"EndpointID\":\"\",\"IPv4Address\":\"10.89.0.2/24\"}},\"Options\":{},\"Labels\":{"
    "\"org.example.bottle\":\"test\",\"org.example.run\":\"r1\"}}]";

/* Docker 20.10 network list: Options kept, Containers never filled */
static const char docker_networks[] =
    "[{\"Name\":\"dk-int\",\"Id\":\"5e56951c4e44\",\"Created\":\"2026-11-24T03:37:13Z\","
    "\"Scope\":\"local\",\"Driver\":\"bridge\",\"EnableIPv6\":false,\"IPAM\":{\"Driver\":"
    "\"default\",\"Options\":null,\"Config\":[{\"Subnet\":\"10.213.250.0/28\",\"Gateway\":"
    "\"10.213.250.1\"}]},\"Internal\":true,\"Attachable\":false,\"Ingress\":false,\"ConfigFrom\":"
    "{\"Network\":\"\"},\"ConfigOnly\":false,\"Containers\":{},\"Options\":{\"com.docker.network."
    "bridge.name\":\"bdint0\"},\"Labels\":{\"io.bottled.role\":\"int\"}},"
    "{\"Name\":\"dk-egr\",\"Id\":\"aa11\",\"IPAM\":{\"Config\":[]},\"Internal\":false,"
    "\"Containers\":{},\"Options\":{},\"Labels\":{}}]";

static void test_networks(void **state)
{
    (void)state;
    struct engine_network_list l;

    assert_int_equal(dk_parse_networks(S(podman_networks), true, &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].name, "bottle-int");
    assert_string_equal(l.v[0].subnet, "10.89.0.0/24");
    assert_string_equal(l.v[0].gateway, "10.89.0.1");
    assert_true(l.v[0].internal);
    assert_null(l.v[0].bridge_name);
    assert_true(l.v[0].containers_known);
    assert_int_equal(l.v[0].containers.n, 1);
    assert_string_equal(l.v[0].containers.v[0], "313e4254f658");
    assert_string_equal(engine_kvs_get(&l.v[0].labels, "org.example.run"), "r1");
    engine_network_list_release(&l);

    assert_int_equal(dk_parse_networks(S(docker_networks), false, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].bridge_name, "bdint0");
    assert_false(l.v[0].containers_known);
    assert_string_equal(l.v[0].subnet, "10.213.250.0/28");
    assert_null(l.v[1].subnet);
    assert_false(l.v[1].internal);
    assert_int_equal(l.v[1].labels.n, 0);
    engine_network_list_release(&l);

    /* row 22: nothing matches */
    assert_int_equal(dk_parse_networks(S("[]"), true, &l), 0);
    assert_int_equal(l.n, 0);
    engine_network_list_release(&l);

    /* not a list, or an entry without a name */
    assert_int_equal(dk_parse_networks(S("{\"message\":\"x\"}"), false, &l), BD_E_PROTO);
    assert_int_equal(dk_parse_networks(S("[{\"Id\":\"x\"}]"), false, &l), BD_E_PROTO);
    assert_int_equal(dk_parse_networks(S("[{\"Name\":"), false, &l), BD_E_PROTO);
}

/* Podman 4.3.1's GET /v4.0.0/libpod/networks/json, as seen on this host. */
static const char libpod_networks[] =
    "[{\"name\":\"bottled-demo-demo-pypi-egr\",\"id\":\"a5e7ea40a901\",\"driver\":\"bridge\","
    "\"network_interface\":\"bdb6b0fd910db6\",\"created\":\"2026-11-24T05:25:49Z\","
    "\"subnets\":[{\"subnet\":\"10.213.0.16/28\",\"gateway\":\"10.213.0.17\"}],"
    "\"ipv6_enabled\":false,\"internal\":false,\"dns_enabled\":true,"
    "\"labels\":{\"io.bottled.role\":\"egr\"},\"ipam_options\":{\"driver\":\"host-local\"}},"
    "{\"name\":\"podman\",\"id\":\"2f25\",\"driver\":\"bridge\",\"internal\":true}]";

static void test_libpod_networks(void **state)
{
    (void)state;
    struct engine_network_list l;
    assert_int_equal(dk_parse_libpod_networks(S(libpod_networks), &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].name, "bottled-demo-demo-pypi-egr");
    assert_string_equal(l.v[0].id, "a5e7ea40a901");
    assert_string_equal(l.v[0].subnet, "10.213.0.16/28");
    assert_string_equal(l.v[0].gateway, "10.213.0.17");
    assert_string_equal(l.v[0].bridge_name, "bdb6b0fd910db6");
    assert_false(l.v[0].internal);
    assert_false(l.v[0].containers_known);
    assert_string_equal(engine_kvs_get(&l.v[0].labels, "io.bottled.role"), "egr");
    assert_true(l.v[1].internal);
    assert_null(l.v[1].subnet);
    engine_network_list_release(&l);
    assert_int_equal(dk_parse_libpod_networks(S("{}"), &l), BD_E_PROTO);
    assert_int_equal(dk_parse_libpod_networks(S("[{\"id\":\"x\"}]"), &l), BD_E_PROTO);
}

static void test_volumes(void **state)
{
    (void)state;
    struct engine_volume_list l;
    static const char vols[] =
        "{\"Volumes\":[{\"CreatedAt\":\"2026-11-24T03:40:00Z\",\"Driver\":\"local\",\"Labels\":"
        "{\"io.bottled.role\":\"work\"},\"Mountpoint\":\"/var/lib/docker/volumes/w/_data\","
        "\"Name\":\"w\",\"Options\":null,\"Scope\":\"local\"}],\"Warnings\":null}";

    assert_int_equal(dk_parse_volumes(S(vols), &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].name, "w");
    assert_string_equal(l.v[0].driver, "local");
    assert_string_equal(engine_kvs_get(&l.v[0].labels, "io.bottled.role"), "work");
    engine_volume_list_release(&l);
    /* Docker answers "Volumes": null when nothing matches */
    assert_int_equal(dk_parse_volumes(S("{\"Volumes\":null,\"Warnings\":null}"), &l), 0);
    assert_int_equal(l.n, 0);
    engine_volume_list_release(&l);
    assert_int_equal(dk_parse_volumes(S("[]"), &l), BD_E_PROTO);
}

/* row 8 (podman container list) with its network and a volume mount */
static const char podman_containers[] =
    "[{\"AutoRemove\":false,\"Command\":\"sleep 300\",\"Created\":1795482931,\"CreatedAt\":\"\","
    "\"Exited\":false,\"ExitedAt\":-62135596800,\"ExitCode\":0,\"Id\":\"5d722d082561edb9beea18a5"
    "e73e6004f0fc4f2ee571dee0e365f68165c92c17\",\"Image\":\"localhost/bottle-base:test\","
    "\"ImageID\":\"sha256:8e8ddd69aa\",\"Labels\":{\"org.example.bottle\":\"test\"},"
    "\"Mounts\":[{\"Type\":\"volume\",\"Name\":\"bt-work\",\"Source\":\"/var/lib/containers/"
    "storage/volumes/bt-work/_data\",\"Destination\":\"/workspace\",\"Driver\":\"local\","
    "\"Mode\":\"\",\"RW\":true,\"Propagation\":\"rprivate\"}],\"Names\":[\"/bottle-c1\"],"
    "\"NetworkSettings\":{\"Networks\":{\"bottle-int\":{\"IPAMConfig\":null,\"Links\":null,"
    "\"Aliases\":[\"agent1\"],\"NetworkID\":\"bottle-int\",\"EndpointID\":\"\",\"Gateway\":"
    "\"10.89.0.1\",\"IPAddress\":\"10.89.0.3\",\"IPPrefixLen\":24,\"MacAddress\":"
    "\"7a:38:8c:3f:dd:5e\"}}},\"Ports\":[],\"State\":\"running\",\"Status\":\"Up Less than a "
    "second\"}]";

/* Docker 20.10 container list: real NetworkID, an exited container */
static const char docker_containers[] =
    "[{\"Id\":\"c0ffee\",\"Names\":[\"/bt-proxy\"],\"Image\":\"localhost/bottled-base:latest\","
    "\"ImageID\":\"sha256:665007d3\",\"Command\":\"sleep 300\",\"Created\":1795490000,"
    "\"Ports\":[],\"Labels\":{\"io.bottled.role\":\"proxy\"},\"State\":\"exited\",\"Status\":"
    "\"Exited (137) 1 second ago\",\"HostConfig\":{\"NetworkMode\":\"bt-egr\"},"
    "\"NetworkSettings\":{\"Networks\":{\"bt-egr\":{\"IPAMConfig\":{\"IPv4Address\":"
    "\"10.213.250.18\"},\"NetworkID\":\"aa11bb\",\"EndpointID\":\"\",\"IPAddress\":\"\"},"
    "\"bt-int\":{\"NetworkID\":\"cc22dd\",\"IPAddress\":\"10.213.250.2\"}}},\"Mounts\":[]}]";

static void test_containers(void **state)
{
    (void)state;
    struct engine_container_list l;

    assert_int_equal(dk_parse_containers(S(podman_containers), true, &l), 0);
    assert_int_equal(l.n, 1);
    struct engine_container *c = &l.v[0];
    assert_string_equal(c->name, "bottle-c1");
    assert_string_equal(c->image_id, "sha256:8e8ddd69aa");
    assert_string_equal(c->state, "running");
    assert_int_equal(c->n_networks, 1);
    assert_string_equal(c->networks[0].network, "bottle-int");
    assert_null(c->networks[0].network_id); /* podman: the name, so no id */
    assert_string_equal(c->networks[0].ipv4, "10.89.0.3");
    assert_int_equal(c->n_mounts, 1);
    assert_string_equal(c->mounts[0].type, "volume");
    assert_string_equal(c->mounts[0].name, "bt-work");
    assert_string_equal(c->mounts[0].destination, "/workspace");
    assert_true(c->mounts[0].rw);
    engine_container_list_release(&l);

    assert_int_equal(dk_parse_containers(S(docker_containers), false, &l), 0);
    c = &l.v[0];
    assert_string_equal(c->name, "bt-proxy");
    assert_string_equal(c->state, "exited");
    assert_int_equal(c->n_networks, 2);
    assert_string_equal(c->networks[0].network_id, "aa11bb");
    assert_null(c->networks[0].ipv4); /* "" = not running */
    assert_string_equal(c->networks[1].ipv4, "10.213.250.2");
    assert_int_equal(c->n_mounts, 0);
    engine_container_list_release(&l);

    assert_int_equal(dk_parse_containers(S("[{\"Names\":[\"/x\"]}]"), false, &l), BD_E_PROTO);
    assert_int_equal(dk_parse_containers(S("null"), false, &l), BD_E_PROTO);
}

/* row 7 (podman inspect) as created with CapDrop ALL + CapAdd CHOWN, KILL */
static const char podman_inspect[] =
    "{\"Id\":\"5d722d08\",\"Created\":\"2026-11-24T01:15:31Z\",\"Path\":\"sleep\",\"Args\":"
    "[\"300\"],\"State\":{\"Status\":\"running\",\"Running\":true,\"Paused\":false,\"Pid\":24010,"
    "\"ExitCode\":0},\"Image\":\"sha256:665007d3\",\"Name\":\"/bottle-c1\",\"HostConfig\":{"
    "\"CapAdd\":[],\"CapDrop\":[\"AUDIT_WRITE\",\"DAC_OVERRIDE\",\"FOWNER\",\"FSETID\",\"MKNOD\","
    "\"NET_BIND_SERVICE\",\"NET_RAW\",\"SETFCAP\",\"SETGID\",\"SETPCAP\",\"SETUID\","
    "\"SYS_CHROOT\"],\"NetworkMode\":\"bridge\",\"Privileged\":false,\"SecurityOpt\":"
    "[\"no-new-privileges\"],\"Ulimits\":[{\"Name\":\"RLIMIT_NOFILE\",\"Hard\":16384,\"Soft\":"
    "16384}],\"PidsLimit\":2048,\"Memory\":0,\"Sysctls\":null,\"ExtraHosts\":[\"proxy:10.89.0.4\""
    "]},\"Config\":{\"Image\":\"localhost/bottle-base:test\",\"User\":\"\",\"WorkingDir\":\"/\","
    "\"Env\":[\"container=podman\",\"FOO=bar\"],\"Labels\":{\"org.example.bottle\":\"test\"}},"
    "\"NetworkSettings\":{\"IPAddress\":\"\",\"Networks\":{\"bottle-int\":{\"Aliases\":["
    "\"agent1\",\"agent-alias\",\"5d722d082561\"],\"NetworkID\":\"bottle-int\",\"EndpointID\":"
    "\"\",\"Gateway\":\"10.89.0.1\",\"IPAddress\":\"10.89.0.3\",\"IPPrefixLen\":24}}},"
    "\"Mounts\":[]}";

/* Docker 20.10 inspect of the same create */
static const char docker_inspect[] =
    "{\"Id\":\"c0ffee\",\"State\":{\"Status\":\"exited\",\"Running\":false,\"Pid\":0,"
    "\"ExitCode\":137},\"Image\":\"sha256:665007d3\",\"Name\":\"/bt-agent\",\"HostConfig\":{"
    "\"NetworkMode\":\"dk-int\",\"CapAdd\":[\"CHOWN\",\"KILL\"],\"CapDrop\":[\"ALL\"],"
    "\"SecurityOpt\":[\"no-new-privileges\"],\"Privileged\":false,\"Memory\":268435456,"
    "\"NanoCpus\":500000000,\"PidsLimit\":128,\"Sysctls\":{\"net.ipv4.ip_forward\":\"0\"}},"
    "\"Config\":{\"Image\":\"localhost/bottled-base:latest\",\"User\":\"0:0\",\"WorkingDir\":"
    "\"/workspace\",\"Labels\":{}},\"NetworkSettings\":{\"Networks\":{\"dk-int\":{"
    "\"NetworkID\":\"5e56951c\",\"IPAddress\":\"\"}}},\"Mounts\":[{\"Type\":\"volume\",\"Name\":"
    "\"bt-work\",\"Source\":\"/var/lib/docker/volumes/bt-work/_data\",\"Destination\":"
    "\"/workspace\",\"RW\":true}]}";

static void test_inspect(void **state)
{
    (void)state;
    struct engine_container_info i;

    assert_int_equal(dk_parse_inspect(S(podman_inspect), true, &i), 0);
    assert_string_equal(i.c.name, "bottle-c1");
    assert_string_equal(i.c.image, "localhost/bottle-base:test");
    assert_string_equal(i.c.image_id, "sha256:665007d3");
    assert_true(i.running);
    assert_int_equal(i.pid, 24010);
    /* podman: "bridge" becomes the one user network */
    assert_string_equal(i.network_mode, "bottle-int");
    /* podman lists the dropped defaults: the real set is CHOWN, KILL */
    assert_int_equal(i.caps.n, 2);
    assert_string_equal(i.caps.v[0], "CHOWN");
    assert_string_equal(i.caps.v[1], "KILL");
    assert_int_equal(i.security_opt.n, 1);
    assert_int_equal(i.pids_limit, 2048);
    assert_int_equal(i.sysctls.n, 0);
    assert_string_equal(i.extra_hosts.v[0], "proxy:10.89.0.4");
    assert_int_equal(i.c.networks[0].aliases.n, 3);
    assert_null(i.c.networks[0].network_id);
    engine_container_info_release(&i);

    assert_int_equal(dk_parse_inspect(S(docker_inspect), false, &i), 0);
    assert_string_equal(i.network_mode, "dk-int");
    assert_false(i.running);
    assert_int_equal(i.exit_code, 137);
    assert_int_equal(i.caps.n, 2);
    assert_string_equal(i.caps.v[0], "CHOWN");
    assert_string_equal(i.caps.v[1], "KILL");
    assert_int_equal(i.memory, 268435456);
    assert_int_equal(i.nano_cpus, 500000000);
    assert_string_equal(engine_kvs_get(&i.sysctls, "net.ipv4.ip_forward"), "0");
    assert_string_equal(i.user, "0:0");
    assert_string_equal(i.c.networks[0].network_id, "5e56951c");
    assert_string_equal(i.c.mounts[0].name, "bt-work");
    engine_container_info_release(&i);

    /* engine-here.md section 3: a default podman container drops exactly
     * AUDIT_WRITE, MKNOD, NET_RAW relative to Docker's defaults */
    static const char dflt[] =
        "{\"Id\":\"x\",\"HostConfig\":{\"CapAdd\":[\"NET_ADMIN\"],\"CapDrop\":[\"AUDIT_WRITE\","
        "\"MKNOD\",\"NET_RAW\"],\"NetworkMode\":\"bridge\"},\"NetworkSettings\":{\"Networks\":{"
        "\"a\":{},\"b\":{}}}}";
    assert_int_equal(dk_parse_inspect(S(dflt), true, &i), 0);
    assert_int_equal(i.caps.n, 12);
    assert_string_equal(i.caps.v[5], "NET_ADMIN"); /* sorted */
    assert_null(i.network_mode);                   /* two networks: unknown */
    engine_container_info_release(&i);

    assert_int_equal(dk_parse_inspect(S("{\"State\":{}}"), false, &i), BD_E_PROTO);
    assert_int_equal(dk_parse_inspect(S("[]"), false, &i), BD_E_PROTO);
}

static void test_error_bodies(void **state)
{
    (void)state;
    char m[300];

    /* rows 15, 19, 21, 23 (podman) and Docker's shapes */
    dk_error_message(S("{\"cause\":\"network is being used\",\"message\":\"\\\"bottle-int\\\" "
                       "has associated containers with it. Use -f to forcibly delete containers "
                       "and pods: network is being used\",\"response\":500}"),
                     m, sizeof(m));
    assert_string_equal(m, "\"bottle-int\" has associated containers with it. Use -f to forcibly "
                           "delete containers and pods: network is being used");
    dk_error_message(S("{\"message\":\"error while removing network: network dk-int id 5e56 has "
                       "active endpoints\"}"),
                     m, sizeof(m));
    assert_non_null(strstr(m, "active endpoints"));
    dk_error_message(S("{\"message\":\"No such image: localhost/nope:x\"}"), m, sizeof(m));
    assert_string_equal(m, "No such image: localhost/nope:x");
    /* cut to the buffer */
    dk_error_message(S("{\"message\":\"0123456789\"}"), m, 5);
    assert_string_equal(m, "0123");
    /* not JSON: first line, non-printables replaced */
    dk_error_message(S("404 page not found\x01\nmore"), m, sizeof(m));
    assert_string_equal(m, "404 page not found?");
    dk_error_message(NULL, 0, m, sizeof(m));
    assert_string_equal(m, "");
}

static void test_filter(void **state)
{
    (void)state;
    struct engine_strv f = {0};
    char *s;

    /* engine-here.md section 3: the exact encoding both engines accept */
    engine_strv_add(&f, "org.example.bottle=test");
    dk_label_filter(&f, &s);
    assert_string_equal(s, "%7B%22label%22%3A%5B%22org.example.bottle%3Dtest%22%5D%7D");
    free(s);
    engine_strv_add(&f, "io.bottled.managed");
    dk_label_filter(&f, &s);
    assert_string_equal(s, "%7B%22label%22%3A%5B%22org.example.bottle%3Dtest%22%2C%22io.bottled."
                           "managed%22%5D%7D");
    free(s);
    engine_strv_release(&f);
    dk_label_filter(NULL, &s);
    assert_string_equal(s, "%7B%22label%22%3A%5B%5D%7D");
    free(s);
    /* label values with JSON and URL metacharacters */
    engine_strv_add(&f, "k=a\"b&c d");
    dk_label_filter(&f, &s);
    assert_string_equal(s, "%7B%22label%22%3A%5B%22k%3Da%5C%22b%26c%20d%22%5D%7D");
    free(s);
    engine_strv_release(&f);

    struct buf b;
    buf_init(&b, 0);
    dk_urlencode(&b, "/etc/bottle dir", "/");
    assert_string_equal(buf_cstr(&b), "/etc/bottle%20dir");
    buf_release(&b);
}

static void test_demux(void **state)
{
    (void)state;
    /* row 13: three frames, fed one byte at a time and whole */
    static const char raw[] = "\x01\x00\x00\x00\x00\x00\x00\x13"
                              "hello from archive\n"
                              "\x01\x00\x00\x00\x00\x00\x00\x10"
                              "script ran: bar\n"
                              "\x02\x00\x00\x00\x00\x00\x00\x04"
                              "err\n";
    for (int step = 1; step <= 2; step++) {
        struct buf out, err;
        struct dk_demux d;
        buf_init(&out, 0);
        buf_init(&err, 0);
        dk_demux_init(&d, &out, &err, 1 << 20);
        if (step == 1)
            for (size_t i = 0; i < sizeof(raw) - 1; i++)
                dk_demux_feed(&d, raw + i, 1);
        else
            dk_demux_feed(&d, raw, sizeof(raw) - 1);
        assert_string_equal(buf_cstr(&out), "hello from archive\nscript ran: bar\n");
        assert_string_equal(buf_cstr(&err), "err\n");
        assert_false(d.truncated);
        assert_false(d.bad);
        buf_release(&out);
        buf_release(&err);
    }
    /* the cap: 10 bytes per stream kept */
    struct buf out, err;
    struct dk_demux d;
    buf_init(&out, 0);
    buf_init(&err, 0);
    dk_demux_init(&d, &out, &err, 10);
    dk_demux_feed(&d, raw, sizeof(raw) - 1);
    assert_int_equal(out.len, 10);
    assert_string_equal(buf_cstr(&err), "err\n");
    assert_true(d.truncated);
    buf_release(&out);
    buf_release(&err);
    /* an unknown stream id is flagged, its payload dropped */
    buf_init(&out, 0);
    buf_init(&err, 0);
    dk_demux_init(&d, &out, &err, 10);
    dk_demux_feed(&d, S("\x07\x00\x00\x00\x00\x00\x00\x02hi"));
    assert_true(d.bad);
    assert_int_equal(out.len + err.len, 0);
    buf_release(&out);
    buf_release(&err);
}

static void test_path_stat(void **state)
{
    (void)state;
    struct engine_path_stat st;
    /* base64 of {"name":"hello.txt","size":19,"mode":420,"mtime":"2026-11-24T01:15:40Z",
     * "linkTarget":""} as Docker and Podman send it */
    static const char b64[] = "eyJuYW1lIjoiaGVsbG8udHh0Iiwic2l6ZSI6MTksIm1vZGUiOjQyMCwibXRpbWUiOiIy"
                              "MDI2LTExLTI0VDAxOjE1OjQwWiIsImxpbmtUYXJnZXQiOiIifQ==";
    assert_int_equal(dk_parse_path_stat(S(b64), &st), 0);
    assert_string_equal(st.name, "hello.txt");
    assert_int_equal(st.size, 19);
    assert_int_equal(st.mode, 0644);
    assert_string_equal(st.link_target, "");
    engine_path_stat_release(&st);
    assert_int_equal(dk_parse_path_stat(S("!!!"), &st), BD_E_PROTO);
    assert_int_equal(dk_parse_path_stat(S("bm90IGpzb24="), &st), BD_E_PROTO); /* "not json" */
}

static void test_api_version(void **state)
{
    (void)state;
    int minor = -1;
    assert_int_equal(dk_parse_api_version(S("1.41"), &minor), 0);
    assert_int_equal(minor, 41);
    assert_int_equal(dk_parse_api_version(S("1.43 "), &minor), 0);
    assert_int_equal(minor, 43);
    assert_int_equal(dk_parse_api_version(S("2.0"), &minor), BD_E_PROTO);
    assert_int_equal(dk_parse_api_version(S("1."), &minor), BD_E_PROTO);
    assert_int_equal(dk_parse_api_version(S("1.4x"), &minor), BD_E_PROTO);
    assert_int_equal(dk_parse_api_version(NULL, 0, &minor), BD_E_PROTO);
}

static void test_registry(void **state)
{
    (void)state;
    struct engine *e = NULL;
    char msg[256];

    assert_ptr_equal(engine_ops_lookup("docker"), &engine_docker_ops);
    assert_null(engine_ops_lookup("apple"));
    assert_int_equal(engine_open("tcp://1.2.3.4:2375", &e, msg, sizeof(msg)), BD_E_INVAL);
    assert_non_null(strstr(msg, "unsupported engine URL"));
    assert_int_equal(engine_open("apple:", &e, msg, sizeof(msg)), BD_E_INVAL);
    assert_int_equal(engine_open("unix://relative.sock", &e, msg, sizeof(msg)), BD_E_INVAL);
    /* a socket that does not exist: unavailable, not a crash */
    assert_int_equal(engine_open("unix:///nonexistent/bottled-test.sock", &e, msg, sizeof(msg)),
                     BD_E_UNAVAIL);
    assert_null(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_networks),  cmocka_unit_test(test_libpod_networks),
        cmocka_unit_test(test_volumes),   cmocka_unit_test(test_containers),
        cmocka_unit_test(test_inspect),   cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_filter),    cmocka_unit_test(test_demux),
        cmocka_unit_test(test_path_stat), cmocka_unit_test(test_api_version),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
