/*
 * firewall.h - the host firewall of architecture.md ("Host firewall"):
 * per-instance iptables and ip6tables chains that keep every bottle's
 * networks away from the host.
 *
 * Chains, in the filter table of both families, named after the instance
 * (12 lower-case hex digits):
 *
 *   BOTTLED-<instance>     jumped to from INPUT, rule 1
 *   BOTTLED-<instance>-F   jumped to from FORWARD, rule 1
 *
 * Rules per bottle, each with "-m comment --comment "bottled <bottle>"" so a
 * listing tells whose rule it is:
 *
 *   BOTTLED-<instance>    -i INT -j DROP
 *                         -i EGR -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
 *                         -d GW/32 -i EGR -p udp -m udp --dport 53 -j RETURN  (IPv4, GW set)
 *                         -d GW/32 -i EGR -p tcp -m tcp --dport 53 -j RETURN  (IPv4, GW set)
 *                         -i EGR -j DROP
 *   BOTTLED-<instance>-F  -i INT -o INT -j ACCEPT
 *                         -i INT ! -o INT -j DROP
 *
 * So the internal bridge reaches no host address at all (gateway, host
 * IPs, the engine's DNS forwarder), nothing from it is routed off the
 * bridge (Docker's internal networks have a default route, Podman's do
 * not), and the egress bridge reaches the host only with replies and DNS to
 * its own gateway.  Bridged traffic between containers on one bridge never
 * passes INPUT; where br_netfilter is loaded it passes FORWARD, whose
 * policy Docker sets to DROP, so the bottle's own containers (agent,
 * sidecar, gate) are accepted across the internal bridge explicitly.  A consequence: the
 * host cannot talk to a container on the internal bridge either (the
 * replies are dropped); talk to the sidecar on its egress address.
 *
 * Bottles are rendered sorted by name, so the caller's order does not
 * matter.  The rules are compared as text with the canonical form
 * `iptables -S` prints (iptables-nft and iptables-legacy 1.8.9 print these
 * rules alike; tests/firewall passes with both); an iptables printing them
 * differently would make every sync re-apply (never leave a bottle open),
 * which fw_stats shows.
 *
 * Ownership of the firewall: the two chains are ours and rewritten as a
 * whole; so is any rule, in any chain, whose target (-j/-g) is one of them
 * (a stray or duplicate jump is deleted).  Nothing else is touched: other
 * chains, other rules, policies, another instance's chains.
 *
 * Commands: `iptables -w -t filter -S` (one listing per family per call)
 * and, only when the listing differs from the desired state,
 * `iptables-restore -w --noflush` with one transaction per family (chains
 * declared, flushed and refilled, jumps deleted by their exact spec and
 * re-inserted at position 1), so a half-applied firewall is never visible.
 * Each apply is preceded by fault_point("firewall ipv4|ipv6 ..."), as
 * fault.h requires.  Binaries are looked up in PATH, then /usr/sbin and
 * /sbin, and run with posix_spawn and an argv (never a shell), stdin piped,
 * stdout captured up to FW_OUTPUT_MAX, stderr captured for the message,
 * each killed after FW_TIMEOUT_MS.
 *
 * Errors (every fallible function): 0, or
 *   BD_E_INVAL     a bad instance, bottle name, bridge name or gateway, a
 *                  duplicate bottle or bridge (nothing was run);
 *   BD_E_NOTFOUND  a binary is missing;
 *   BD_E_IO        a command could not be started or exited non-zero
 *                  (not root, no netfilter, a rule the kernel refused);
 *   BD_E_UNAVAIL   a command did not finish within FW_TIMEOUT_MS;
 *   BD_E_TOO_BIG   a listing exceeded FW_OUTPUT_MAX;
 *   BD_E_PROTO     a listing line this parser does not understand.
 * On failure err (when errlen > 0) holds one line naming the command and
 * the first lines of its stderr, e.g. "iptables-restore -w --noflush
 * failed (exit 4): iptables-restore v1.8.9 (nf_tables): line 2:
 * CHAIN_DEL failed (Device or resource busy): chain BOTTLED-..."; on
 * success err is "".  No secret is involved anywhere here.
 *
 * Threads: not thread-safe; call from one thread at a time (the
 * reconciler's loop).  While writing to a child it blocks SIGPIPE in the
 * calling thread only and restores the mask; children start with the
 * default signal dispositions and an empty mask.
 */
#ifndef BOTTLED_FIREWALL_H
#define BOTTLED_FIREWALL_H

#include <stddef.h>

struct buf;

#define FW_INSTANCE_LEN  12
#define FW_CHAIN_PREFIX  "BOTTLED-"
#define FW_CHAIN_LEN_MAX 28 /* iptables' limit; ours are 20 and 22 */
#define FW_TIMEOUT_MS    30000
#define FW_OUTPUT_MAX    ((size_t)16 << 20)

/*
 * One bottle's networks.  All strings are borrowed for the call.
 * bottle: a valid bottle name (manifest.h: bottle_name_valid()).
 * int_bridge, egr_bridge: host interface names (1-15 of [A-Za-z0-9_.-],
 *   different from each other and from every other bottle's).
 * egr_gateway: the egress network's IPv4 gateway, whose port 53 (udp and
 *   tcp) stays open to the egress bridge; NULL: no DNS exception.
 */
struct fw_bottle {
    const char *bottle;
    const char *int_bridge;
    const char *egr_bridge;
    const char *egr_gateway;
};

/* What one call ran; lets a test prove that a converged sync changes nothing. */
struct fw_stats {
    unsigned listings; /* `iptables -S` / `ip6tables -S` runs */
    unsigned applies;  /* `iptables-restore` / `ip6tables-restore` runs */
};

/*
 * Makes both families' chains exactly the rules of the n bottles (rules of
 * bottles not passed are removed), with exactly one jump to each chain at
 * position 1 of INPUT / FORWARD.  Runs one listing per family and an apply
 * only for a family whose listing differs.  n == 0 is fw_remove().  The
 * reconciler calls it once per pass with every bottle of the instance
 * that has networks.
 * st (may be NULL) is zeroed and then counts what ran, also on failure.
 * Nothing is applied unless both listings were read and understood; then
 * each family is applied on its own, so one that fails (err tells the
 * first failure) does not keep the other one from being applied.
 */
int fw_sync(const char *instance, const struct fw_bottle *b, size_t n, struct fw_stats *st,
            char *err, size_t errlen);

/* Deletes our jumps and both chains in both families; 0 if none existed. */
int fw_remove(const char *instance, struct fw_stats *st, char *err, size_t errlen);

/*
 * The bottles that have rules in our chains (either family), sorted,
 * without duplicates, for status and gc.  *ret_names (free with
 * fw_names_free()) and *ret_n are written only on success.
 */
int fw_list_bottles(const char *instance, char ***ret_names, size_t *ret_n, char *err,
                    size_t errlen);

void fw_names_free(char **names, size_t n);

/* ------------------------------------------------ pure parts, for tests */

enum fw_family {
    FW_IPV4,
    FW_IPV6,
};

/*
 * The desired content of our chains as `iptables -S` lines ("-A CHAIN
 * SPEC\n"), the INPUT chain's first.  Appends to out.
 * BD_E_INVAL: see above (out unchanged).
 */
int fw_render(enum fw_family f, const char *instance, const struct fw_bottle *b, size_t n,
              struct buf *out);

/*
 * Compares a listing (`iptables -S` output of the filter table, len bytes,
 * not necessarily NUL-terminated) with the desired state for n bottles
 * (n == 0: none of our chains or jumps) and appends to restore the
 * `iptables-restore --noflush` input that converges it, or nothing when
 * the listing already matches.
 * BD_E_INVAL (arguments), BD_E_PROTO (a listing line that is not -P/-N/-A,
 * an unterminated quote), BD_E_TOO_BIG (restore's cap); restore is
 * unchanged on failure.
 */
int fw_plan(enum fw_family f, const char *instance, const struct fw_bottle *b, size_t n,
            const char *listing, size_t len, struct buf *restore);

/*
 * The bottle names in our chains' comments ("bottled NAME") of a listing,
 * appended to *names / *n (grown with xrealloc; the caller frees with
 * fw_names_free()), sorted and deduplicated with what was there.
 * BD_E_INVAL, BD_E_PROTO.
 */
int fw_listing_bottles(const char *instance, const char *listing, size_t len, char ***names,
                       size_t *n);

/*
 * Runs argv[0] (looked up in PATH, /usr/sbin, /sbin) with argv, in (in_len
 * bytes, may be NULL) on its stdin, its stdout appended to out (capped by
 * out->max: BD_E_TOO_BIG, the child is killed), killed after timeout_ms
 * (> 0).  0 only when it exited 0; out may hold partial output on
 * failure.  Errors as above, with err naming argv ("" on success).
 */
int fw_exec(const char *const argv[], const char *in, size_t in_len, struct buf *out,
            int timeout_ms, char *err, size_t errlen);

#endif
