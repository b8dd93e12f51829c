#!/bin/bash
# tests/proxy/netns.sh - test hosts in network namespaces (needs root, iproute2).
#
#   netns.sh up NAME INDEX        create netns NAME linked to the host by a veth
#                                 pair and print the namespace's address
#   netns.sh exec NAME CMD...     run CMD inside NAME (ip netns exec)
#   netns.sh down NAME INDEX      remove it all; idempotent, quiet when absent
#   netns.sh with NAME INDEX -- CMD...
#                                 up, run CMD on the host with UPSTREAM_IP,
#                                 UPSTREAM_IP6 and UPSTREAM_NS exported, then
#                                 down (also on error or signal); exits with
#                                 CMD's status
#
# INDEX (1..250) picks the link: host side "bd-t<INDEX>h" 10.231.<INDEX>.1/30,
# namespace side "bd-t<INDEX>n" 10.231.<INDEX>.2/30 (plus fdbd:231:<INDEX>::1
# and ::2 /126), lo up, default routes via the host side.  The host reaches
# the namespace directly over the /30; nothing is forwarded or NATed.  `down`
# also terminates processes still running inside the namespace.
set -euo pipefail

usage() {
    echo "usage: $0 up|down NAME INDEX | exec NAME CMD... | with NAME INDEX -- CMD..." >&2
    exit 2
}

check_name() {
    [[ "$1" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || {
        echo "$0: bad namespace name: $1" >&2
        exit 2
    }
}

check_index() {
    if ! [[ "$1" =~ ^[1-9][0-9]{0,2}$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt 250 ]; then
        echo "$0: INDEX must be 1..250: $1" >&2
        exit 2
    fi
}

ns_exists() {
    [ -e "/run/netns/$1" ]
}

do_up() {
    local name=$1 idx=$2
    local host="bd-t${idx}h" peer="bd-t${idx}n"
    if ns_exists "$name"; then
        echo "$0: netns $name already exists (run: $0 down $name $idx)" >&2
        exit 1
    fi
    if ip link show dev "$host" >/dev/null 2>&1; then
        echo "$0: link $host already exists: INDEX $idx is in use" >&2
        exit 1
    fi
    ip netns add "$name"
    if ! {
        ip link add "$host" type veth peer name "$peer" &&
            ip link set "$peer" netns "$name" &&
            ip addr add "10.231.$idx.1/30" dev "$host" &&
            ip -6 addr add "fdbd:231:$idx::1/126" dev "$host" nodad &&
            ip link set "$host" up &&
            ip -n "$name" link set lo up &&
            ip -n "$name" addr add "10.231.$idx.2/30" dev "$peer" &&
            ip -n "$name" -6 addr add "fdbd:231:$idx::2/126" dev "$peer" nodad &&
            ip -n "$name" link set "$peer" up &&
            ip -n "$name" route add default via "10.231.$idx.1" dev "$peer" &&
            ip -n "$name" -6 route add default via "fdbd:231:$idx::1" dev "$peer"
    }; then
        do_down "$name" "$idx"
        echo "$0: setting up $name failed" >&2
        exit 1
    fi
    echo "10.231.$idx.2"
}

do_down() {
    local name=$1 idx=$2
    local host="bd-t${idx}h" pids
    if ns_exists "$name"; then
        pids=$(ip netns pids "$name" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086 # a list of pids
            kill -TERM $pids 2>/dev/null || true
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                pids=$(ip netns pids "$name" 2>/dev/null || true)
                [ -z "$pids" ] && break
                sleep 0.1
            done
            # shellcheck disable=SC2086
            [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
        fi
        ip netns del "$name" 2>/dev/null || true
    fi
    if ip link show dev "$host" >/dev/null 2>&1; then
        ip link del "$host" 2>/dev/null || true
    fi
}

[ "$#" -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
up | down)
    [ "$#" -eq 2 ] || usage
    check_name "$1"
    check_index "$2"
    "do_$cmd" "$1" "$2"
    ;;
exec)
    [ "$#" -ge 2 ] || usage
    check_name "$1"
    name=$1
    shift
    exec ip netns exec "$name" "$@"
    ;;
with)
    if [ "$#" -lt 4 ] || [ "$3" != "--" ]; then
        usage
    fi
    check_name "$1"
    check_index "$2"
    name=$1
    idx=$2
    shift 3
    UPSTREAM_IP=$(do_up "$name" "$idx")
    # Only after our own up succeeded: never tear down someone else's namespace.
    trap 'do_down "$name" "$idx"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    UPSTREAM_IP6="fdbd:231:$idx::2"
    UPSTREAM_NS=$name
    export UPSTREAM_IP UPSTREAM_IP6 UPSTREAM_NS
    rc=0
    "$@" || rc=$?
    exit "$rc"
    ;;
*)
    usage
    ;;
esac
