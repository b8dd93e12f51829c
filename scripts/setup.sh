#!/usr/bin/env bash
# scripts/setup.sh - the one set-up script: Debian packages for the build,
# the tests and the examples; container engines; local images.
# Idempotent: a second run only checks, and is fast.
#
#   bash scripts/setup.sh [--deps-only] [--engine=podman|docker|both]
#                         [--sandbox-engine-config]
#
#   --deps-only              packages for the build and the unit tests only
#                            (no engines, no images); used inside the CI chroot
#   --bench                  also the benchmark peers (mitmproxy, nginx-light,
#                            podman-compose, docker-compose)
#   --engine=E               engine(s) to set up (default: both)
#   --sandbox-engine-config  write the engine configuration that this sandbox
#                            needs (runc, cgroupfs, ulimits; see
#                            spec/engine-here.md). Implied by CI=true. Never
#                            overwrites a configuration file that is not ours.
#
# Environment: FORCE_IMAGES=1 rebuilds the images; IMG_DIR (default
# /var/lib/bottled-images) caches the image trees.
#
# Result: podman's Docker-compatible API on unix:///run/podman/podman.sock
# (pid /run/podman/service.pid), dockerd on unix:///run/docker.sock
# (pid /run/docker.pid), images localhost/bottled-{base,debian,agent}:latest
# in each engine.
set -euo pipefail

LOG_TAG=setup
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap step_exit_report EXIT

DEPS_ONLY=0
BENCH=0
ENGINE=both
APPLY_CONFIG=0
[ "${CI:-}" = true ] && APPLY_CONFIG=1
for arg in "$@"; do
    case "$arg" in
    --deps-only) DEPS_ONLY=1 ;;
    --bench) BENCH=1 ;;
    --engine=*) ENGINE=${arg#--engine=} ;;
    --sandbox-engine-config) APPLY_CONFIG=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $arg (see --help)" ;;
    esac
done
case "$ENGINE" in podman | docker | both) ;; *) die "--engine must be podman, docker or both" ;; esac

FORCE_IMAGES=${FORCE_IMAGES:-0}
IMG_DIR=${IMG_DIR:-/var/lib/bottled-images}
PODMAN_SOCK=/run/podman/podman.sock
DOCKER_SOCK=/run/docker.sock
BASE_TAG=localhost/bottled-base:latest
DEBIAN_TAG=localhost/bottled-debian:latest
AGENT_TAG=localhost/bottled-agent:latest
# (openssh-client: the git gate's image, on this tree, pushes upstream over ssh)
DEBIAN_INCLUDE=iproute2,iptables,curl,ca-certificates,procps,netcat-openbsd,git,openssh-client
MARK='# managed by bottled scripts/setup.sh'
export DEBIAN_FRONTEND=noninteractive
unset CONTAINER_HOST CONTAINER_CONNECTION # podman CLI: always the local store

want_podman() { [ "$DEPS_ONLY" = 0 ] && { [ "$ENGINE" = podman ] || [ "$ENGINE" = both ]; }; }
want_docker() { [ "$DEPS_ONLY" = 0 ] && { [ "$ENGINE" = docker ] || [ "$ENGINE" = both ]; }; }
# eng ENGINE ARGS...: the engine's CLI, docker pinned to our daemon
eng() {
    local e=$1
    shift
    if [ "$e" = docker ]; then
        DOCKER_HOST="unix://$DOCKER_SOCK" docker "$@"
    else
        podman "$@"
    fi
}

T_START=$(now)

# ---------------------------------------------------------------- packages
# build + unit tests (also what the chroot stage proves sufficient)
# (openssh-client: test_keys checks our key files with ssh-keygen)
PKGS_DEPS="build-essential cmake pkg-config libyaml-dev libsqlite3-dev libssl-dev
  libcurl4-openssl-dev libcjson-dev fswatch libpcre2-dev libidn2-dev libc-ares-dev libcmocka-dev
  zlib1g-dev python3 python3-yaml python3-jsonschema git openssl ca-certificates curl
  openssh-client"
# everything else: format check, fuzzing, examples, engine tests, images
PKGS_FULL="clang clang-format libclang-rt-14-dev iproute2 iptables
  debootstrap busybox-static openssh-server"
# only with --bench: the peers bench/compare-proxies.sh (mitmproxy, nginx) and
# bench/reconcile-bench.sh (the compose tools) measure against (installing
# nginx starts it on port 80 where an init system runs services)
PKGS_BENCH="mitmproxy nginx-light podman-compose docker-compose"
PKGS_PODMAN="podman runc conmon netavark aardvark-dns buildah uidmap"
PKGS_DOCKER="docker.io"

missing_of() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || printf ' %s' "$p"
    done
}

install_packages() {
    local want missing
    # shellcheck disable=SC2086 # word splitting of the package lists is intended
    {
        want="$PKGS_DEPS"
        [ "$DEPS_ONLY" = 1 ] || want="$want $PKGS_FULL"
        [ "$BENCH" = 1 ] && want="$want $PKGS_BENCH"
        want_podman && want="$want $PKGS_PODMAN"
        want_docker && want="$want $PKGS_DOCKER"
        missing=$(missing_of $want)
    }
    if [ -z "$missing" ]; then
        log "all packages present"
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root to install them)"
    log "installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing </dev/null >/dev/null
    missing=$(missing_of $missing)
    [ -z "$missing" ] || die "still missing after apt-get install:$missing"
}
step packages install_packages

if [ "$DEPS_ONLY" = 1 ]; then
    log "deps-only: done in $(elapsed "$T_START") s"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "engines and images need root"

# ---------------------------------------------------------------- config
# write_managed_toml PATH < content: status 0 = file written (changed).
# Writes only when the file is missing or carries our marker as first line.
write_managed_toml() {
    local path=$1 tmp
    tmp=$(mktemp)
    {
        printf '%s\n' "$MARK"
        cat
    } >"$tmp"
    if [ -e "$path" ]; then
        if [ "$(head -n1 "$path")" != "$MARK" ]; then
            log "config: $path exists and is not ours: left alone (not overwriting a user's file)"
            rm -f "$tmp"
            return 1
        fi
        if cmp -s "$tmp" "$path"; then
            rm -f "$tmp"
            return 1
        fi
    fi
    install -D -m 0644 "$tmp" "$path" || die "cannot write $path"
    rm -f "$tmp"
    log "config: wrote $path"
    return 0
}

# write_managed_json PATH < content: like write_managed_toml; JSON holds no
# comments, so ownership is recorded in PATH.bottled-managed (sha256 of what we wrote).
write_managed_json() {
    local path=$1 marker="$1.bottled-managed" tmp sum
    tmp=$(mktemp)
    cat >"$tmp"
    if [ -e "$path" ]; then
        sum=$(sha256sum <"$path" | cut -d' ' -f1)
        if [ ! -f "$marker" ] || [ "$(cat "$marker")" != "$sum" ]; then
            log "config: $path exists and is not ours (no matching $marker): left alone"
            rm -f "$tmp"
            return 1
        fi
        if cmp -s "$tmp" "$path"; then
            rm -f "$tmp"
            return 1
        fi
    fi
    install -D -m 0644 "$tmp" "$path" || die "cannot write $path"
    sha256sum <"$tmp" | cut -d' ' -f1 >"$marker" || die "cannot write $marker"
    rm -f "$tmp"
    log "config: wrote $path (ownership recorded in $marker)"
    return 0
}

PODMAN_CONF_CHANGED=0
DOCKER_CONF_CHANGED=0
configure_engines() {
    if [ "$APPLY_CONFIG" != 1 ]; then
        log "config: engine configuration not applied (use CI=true or --sandbox-engine-config)"
        return 0
    fi
    if want_podman; then
        write_managed_toml /etc/containers/containers.conf <<'EOF' && PODMAN_CONF_CHANGED=1
# Podman 4.3 on a sandboxed Debian 12 host: no systemd, cgroup v1 "hybrid"
# layout, no CAP_SYS_RESOURCE (hard rlimits cannot be raised).
[containers]
# Built-in root default nofile=1048576 exceeds what this host allows
# -> "setrlimit RLIMIT_NOFILE: Operation not permitted".  Keep soft == hard:
# the 4.3.1 compat (Docker) API swaps soft/hard of default_ulimits.
default_ulimits = [
  "nofile=16384:16384",
  "nproc=8192:8192",
]
log_driver = "k8s-file"

[engine]
# crun 1.8 rejects the cgroup hybrid mode; runc works.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
# no registry is reachable: never try to pull implicitly
pull_policy = "never"
# compat API: don't force unqualified image names to docker.io
compat_api_enforce_docker_hub = false

[network]
network_backend = "netavark"
EOF
        write_managed_toml /etc/containers/storage.conf <<'EOF' && PODMAN_CONF_CHANGED=1
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"

[storage.options.overlay]
mountopt = "nodev"
EOF
    fi
    if want_docker; then
        write_managed_json /etc/docker/daemon.json <<'EOF' && DOCKER_CONF_CHANGED=1
{
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "iptables": true,
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "default-ulimits": {
    "nofile": {"Name": "nofile", "Soft": 16384, "Hard": 16384},
    "nproc":  {"Name": "nproc",  "Soft": 8192,  "Hard": 8192}
  }
}
EOF
    fi
    return 0
}
step config configure_engines

# ---------------------------------------------------------------- services
ping_sock() { curl -sf --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }
wait_sock() { # SOCK PID SECONDS
    local i
    for i in $(seq 1 $(($3 * 20))); do
        ping_sock "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop_pidfile() {
    local pid
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping pid $pid ($1)"
        kill "$pid"
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$1"
}

start_podman() {
    if [ "$PODMAN_CONF_CHANGED" = 0 ] && ping_sock "$PODMAN_SOCK"; then
        log "podman service answers on $PODMAN_SOCK"
        return 0
    fi
    stop_pidfile /run/podman/service.pid
    mkdir -p /run/podman
    rm -f "$PODMAN_SOCK"
    log "starting podman system service on unix://$PODMAN_SOCK"
    nohup setsid podman system service --time=0 "unix://$PODMAN_SOCK" \
        </dev/null >/run/podman/service.log 2>&1 &
    echo "$!" >/run/podman/service.pid
    wait_sock "$PODMAN_SOCK" "$(cat /run/podman/service.pid)" 30 || {
        tail -20 /run/podman/service.log >&2
        die "podman service did not come up (log: /run/podman/service.log)"
    }
}

start_docker() {
    if [ "$DOCKER_CONF_CHANGED" = 0 ] && ping_sock "$DOCKER_SOCK"; then
        log "dockerd answers on $DOCKER_SOCK"
        return 0
    fi
    stop_pidfile /run/docker.pid
    log "starting dockerd on unix://$DOCKER_SOCK"
    nohup setsid dockerd --host "unix://$DOCKER_SOCK" --pidfile /run/docker.pid \
        </dev/null >/run/dockerd.log 2>&1 &
    local pid=$!
    wait_sock "$DOCKER_SOCK" "$pid" 60 || {
        tail -20 /run/dockerd.log >&2
        die "dockerd did not come up (log: /run/dockerd.log)"
    }
}
if want_podman; then step podman-service start_podman; fi
if want_docker; then step docker-service start_docker; fi

# ---------------------------------------------------------------- images
ENGINES=""
if want_podman; then ENGINES="$ENGINES podman"; fi
if want_docker; then ENGINES="$ENGINES docker"; fi
have_image() { eng "$1" image inspect "$2" >/dev/null 2>&1; }
# need_image TAG: some engine lacks TAG (or FORCE_IMAGES=1)
need_image() {
    local e
    [ "$FORCE_IMAGES" = 1 ] && return 0
    for e in $ENGINES; do have_image "$e" "$1" || return 0; done
    return 1
}
# import_tree TAG DIR --change... : import DIR as TAG into every engine that needs it
import_tree() {
    local tag=$1 dir=$2 e
    shift 2
    for e in $ENGINES; do
        if [ "$FORCE_IMAGES" != 1 ] && have_image "$e" "$tag"; then continue; fi
        log "$e: importing $tag"
        tar --numeric-owner -C "$dir" -c . |
            eng "$e" import "$@" \
                --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                - "$tag" >/dev/null 2>"$IMG_DIR/import.log" || {
            cat "$IMG_DIR/import.log" >&2
            die "$e: import of $tag failed"
        }
    done
}

build_base() {
    need_image "$BASE_TAG" || {
        log "$BASE_TAG present"
        return 0
    }
    local d=$IMG_DIR/busybox-rootfs a
    readelf -l /bin/busybox 2>/dev/null | grep -q INTERP &&
        die "/bin/busybox is not static (install busybox-static)"
    rm -rf "$d"
    mkdir -p "$d"/bin "$d"/etc "$d"/tmp "$d"/var/tmp "$d"/proc "$d"/sys "$d"/dev "$d"/root "$d"/usr
    cp /bin/busybox "$d/bin/busybox"
    for a in $("$d/bin/busybox" --list); do
        [ "$a" = busybox ] || ln -sf busybox "$d/bin/$a"
    done
    ln -sfn bin "$d/sbin"
    ln -sfn ../bin "$d/usr/bin"
    ln -sfn ../bin "$d/usr/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$d/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$d/etc/group"
    chmod 1777 "$d/tmp" "$d/var/tmp"
    import_tree "$BASE_TAG" "$d" --change 'CMD ["/bin/sh"]'
}

# debian_tree: the cached debootstrap tree shared by the debian and agent images;
# rebuilt only when missing or when the package list changed.
debian_tree() {
    local d=$IMG_DIR/debian-rootfs stamp mirror tmp
    stamp="bookworm minbase $DEBIAN_INCLUDE"
    if [ -f "$d/.bottled-stamp" ] && [ "$(cat "$d/.bottled-stamp")" = "$stamp" ]; then
        return 0
    fi
    mirror=$(debian_mirror) || die "no Debian mirror found in the apt sources"
    tmp=$IMG_DIR/debian-rootfs.tmp
    rm -rf --one-file-system "$tmp"
    mkdir -p "$IMG_DIR"
    log "debootstrap bookworm (minbase + $DEBIAN_INCLUDE) from $mirror"
    debootstrap --variant=minbase --include="$DEBIAN_INCLUDE" bookworm "$tmp" "$mirror" \
        >"$IMG_DIR/debootstrap.log" 2>&1 || {
        tail -20 "$IMG_DIR/debootstrap.log" >&2
        die "debootstrap failed (log: $IMG_DIR/debootstrap.log)"
    }
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
    printf '%s\n' "$stamp" >"$tmp/.bottled-stamp"
    rm -rf --one-file-system "$d"
    mv "$tmp" "$d"
    # a new tree means new images
    FORCE_IMAGES=1
}

# debian_tree_current: the cached tree was made from today's package list
debian_tree_current() {
    [ "$(cat "$IMG_DIR/debian-rootfs/.bottled-stamp" 2>/dev/null)" = "bookworm minbase $DEBIAN_INCLUDE" ]
}

build_debian() {
    if ! need_image "$DEBIAN_TAG" && ! need_image "$AGENT_TAG" && debian_tree_current; then
        log "$DEBIAN_TAG and $AGENT_TAG present"
        return 0
    fi
    debian_tree
    local d=$IMG_DIR/debian-rootfs a=$IMG_DIR/agent-rootfs f
    import_tree "$DEBIAN_TAG" "$d" --change 'CMD ["/bin/bash"]'

    # agent tree: hard-linked copy of the Debian tree; the files changed here
    # are replaced (not edited in place), so the cached tree stays untouched.
    rm -rf --one-file-system "$a"
    cp -al "$d" "$a"
    rm -f "$a/.bottled-stamp"
    for f in passwd group shadow gshadow; do
        cp --remove-destination "$d/etc/$f" "$a/etc/$f"
    done
    echo 'agent:x:1000:1000:bottled agent:/home/agent:/bin/bash' >>"$a/etc/passwd"
    echo 'agent:x:1000:' >>"$a/etc/group"
    echo 'agent:!:19000:0:99999:7:::' >>"$a/etc/shadow"
    echo 'agent:!::' >>"$a/etc/gshadow"
    mkdir -p "$a/home/agent" "$a/workspace"
    chown 1000:1000 "$a/home/agent" "$a/workspace"
    chmod 0755 "$a/home/agent" "$a/workspace"
    import_tree "$AGENT_TAG" "$a" --change 'CMD ["/bin/bash"]' \
        --change 'ENV HOME=/home/agent' --change 'USER agent' --change 'WORKDIR /workspace'
    rm -rf --one-file-system "$a"
}

mkdir -p "$IMG_DIR"
step image-base build_base
step image-debian-agent build_debian

# ---------------------------------------------------------------- smoke check
smoke() {
    local e out
    for e in $ENGINES; do
        out=$(eng "$e" run --rm "$BASE_TAG" sh -c 'echo ok') || die "$e: run $BASE_TAG failed"
        [ "$out" = ok ] || die "$e: $BASE_TAG printed '$out'"
        out=$(eng "$e" run --rm "$AGENT_TAG" sh -c 'echo "$(id -un) $(pwd)"') ||
            die "$e: run $AGENT_TAG failed"
        [ "$out" = "agent /workspace" ] || die "$e: $AGENT_TAG printed '$out'"
        log "$e: smoke check ok"
    done
}
step smoke smoke

if want_podman; then log "podman ready: DOCKER_HOST=unix://$PODMAN_SOCK"; fi
if want_docker; then log "dockerd ready: DOCKER_HOST=unix://$DOCKER_SOCK"; fi
log "setup done in $(elapsed "$T_START") s"
