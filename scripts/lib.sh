# scripts/lib.sh - shell helpers shared by the scripts in scripts/ (sourced, not run).
# Callers set LOG_TAG before sourcing to prefix their log lines.

LOG_TAG=${LOG_TAG:-bottled}

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# now: seconds since the epoch with milliseconds, for durations
now() { date +%s.%N | cut -c1-14; }
# elapsed START: seconds since START, one decimal
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

# step NAME CMD...: run CMD (in this shell, errexit intact), log how long it
# took. A failure exits the script through errexit; scripts install
# `trap step_exit_report EXIT` to name the failed step and its duration.
STEP_NAME=""
step() {
    STEP_NAME=$1
    shift
    STEP_T0=$(now)
    log "step: $STEP_NAME"
    "$@"
    log "step: $STEP_NAME done in $(elapsed "$STEP_T0") s"
    STEP_NAME=""
}
step_exit_report() { # [STATUS]
    local rc=${1:-$?}
    if [ "$rc" -ne 0 ] && [ -n "$STEP_NAME" ]; then
        log "step: $STEP_NAME FAILED (exit $rc) after $(elapsed "$STEP_T0") s"
    fi
    return "$rc"
}

# repo_root: the top of the git work tree holding this script
repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# source_files [PATTERN...]: files git would commit (tracked plus untracked,
# minus ignored ones), NUL-separated, only those that exist in the work tree.
source_files() {
    local f
    git ls-files -z --cached --others --exclude-standard -- "$@" |
        while IFS= read -r -d '' f; do
            [ -f "$f" ] && printf '%s\0' "$f"
        done
}

# debian_mirror: the first Debian (non-security) mirror from the machine's apt sources
debian_mirror() {
    local m=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        m=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' \
            /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list)
    fi
    [ -n "$m" ] || return 1
    printf '%s\n' "$m"
}

# engine_answers SOCKET: the engine on that unix socket answers /_ping
engine_answers() { curl -sf --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }

# image_from_binary TAG CONTAINERFILE LABEL SUM ARG BIN
#   Makes TAG, whose LABEL must read SUM, in Podman and (when it answers)
#   Docker.  Podman builds it from CONTAINERFILE (given SUM as build ARG) and
#   a context whose rootfs/ holds BIN as /usr/local/bin/bottle-proxy and
#   every library BIN links but glibc's own (the base is the same Debian
#   release, so its glibc is the one BIN was built against); Docker gets the
#   same image through `podman save | docker load`, so both engines run
#   identical bits.  An engine whose copy already has LABEL = SUM is left
#   alone unless FORCE_IMAGES=1.
image_from_binary() {
    local tag=$1 cf=$2 label=$3 sum=$4 arg=$5 bin=$6 ctx
    local podman_sock=/run/podman/podman.sock docker_sock=/run/docker.sock
    label_of() { # engine-cli...: LABEL of TAG, empty if absent
        "$@" image inspect --format "{{ index .Config.Labels \"$label\" }}" "$tag" 2>/dev/null || true
    }
    engine_answers "$podman_sock" || die "podman does not answer on $podman_sock (bash scripts/setup.sh)"
    if [ "${FORCE_IMAGES:-0}" != 1 ] && [ "$(label_of podman)" = "$sum" ]; then
        log "podman: $tag is current"
    else
        ctx=$(mktemp -d)
        mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/usr/local/lib/bottle-proxy" \
            "$ctx/rootfs/etc/ld.so.conf.d"
        install -m 0755 "$bin" "$ctx/rootfs/usr/local/bin/bottle-proxy"
        ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' |
            grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
            while read -r lib; do cp -L "$lib" "$ctx/rootfs/usr/local/lib/bottle-proxy/"; done
        echo /usr/local/lib/bottle-proxy >"$ctx/rootfs/etc/ld.so.conf.d/bottle-proxy.conf"
        cp "$cf" "$ctx/Containerfile"
        log "podman: building $tag ($(ls "$ctx/rootfs/usr/local/lib/bottle-proxy" | wc -l) libraries)"
        podman build -q --pull=never --build-arg "$arg=$sum" -t "$tag" "$ctx" >/dev/null ||
            { rm -rf "$ctx"; die "podman build $tag failed"; }
        rm -rf "$ctx"
    fi
    if engine_answers "$docker_sock"; then
        if [ "${FORCE_IMAGES:-0}" != 1 ] &&
            [ "$(label_of env DOCKER_HOST="unix://$docker_sock" docker)" = "$sum" ]; then
            log "docker: $tag is current"
        else
            log "docker: loading $tag from podman"
            podman save --format docker-archive "$tag" |
                DOCKER_HOST="unix://$docker_sock" docker load -q >/dev/null
        fi
    fi
    log "$tag ready ($label ${sum:0:12})"
}
