#!/usr/bin/env bash
# Large relays: 16 parallel 4 MiB answers, with a Content-Length and
# chunked, all arrive whole and without multi-second stalls; a slow reader
# of 16 MiB (far more than the sockets buffer, so the relay's backpressure,
# RELAY_HIGH, stops and restarts the upstream reads) gets the whole body
# and does not hold up a fast download on another connection meanwhile.
#
# The time bounds are generous correctness bounds against stalls and hangs
# (a relay that waits for the next network event with bytes already
# decrypted, a starved connection), not performance targets: the batches
# take 1-3 s on a 2-CPU VM, and a sanitizer build is slower.
. "$(dirname "$0")/live.sh"

BIG=$((4 << 20))
HUGE=$((16 << 20))
N=16
BATCH_MAX_S=20

live_setup 26
live_routes "$(route_of upstream.test)['ports'].append(8445)"
live_start "size:$BIG"
live_upstream 8444 "chunked:$BIG"
live_upstream 8445 "size:$HUGE"
xsum() { head -c "$1" /dev/zero | tr '\0' x | sha256sum | cut -d' ' -f1; }
WANT=$(xsum "$BIG")
WANT_HUGE=$(xsum "$HUGE")

# fetch NAME URL [CURL-ARGS...]: one download through the proxy in the
# background; the body in $TMP/NAME.body, "status bytes seconds" in $TMP/NAME.w.
FETCH_PIDS=()
fetch() {
    curl -sS --max-time 60 -x "$PROXY_URL" --cacert "$BOTTLE_CA" -o "$TMP/$1.body" \
        -w '%{http_code} %{size_download} %{time_total}\n' "${@:3}" "$2" \
        >"$TMP/$1.w" 2>"$TMP/$1.err" &
    FETCH_PIDS+=($!)
}
# wait_fetches: waits for the downloads started so far (not the proxy or upstreams).
wait_fetches() {
    local p
    for p in "${FETCH_PIDS[@]}"; do wait "$p" || true; done
    FETCH_PIDS=()
}
# check_body NAME SHA256 WHAT: 200 and the exact bytes.
check_body() {
    local w sum
    w=$(cat "$TMP/$1.w" 2>/dev/null)
    sum=$(cat "$TMP/$1.body" 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "${w%% *}" = 200 ] && [ "$sum" = "$2" ]; then ok "$3"; else
        not_ok "$3" "curl: ${w:-nothing} $(head -c 300 "$TMP/$1.err")" \
            "sha256 $sum, expected $2"
    fi
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# batch PORT KIND: N parallel downloads, each on its own connection.
batch() {
    local port=$1 kind=$2 i t0 ms bad=0
    t0=$(now_ms)
    for i in $(seq "$N"); do fetch "$kind.$i" "https://upstream.test:$port/big/$i"; done
    wait_fetches
    ms=$(($(now_ms) - t0))
    for i in $(seq "$N"); do
        local w sum
        w=$(cat "$TMP/$kind.$i.w" 2>/dev/null)
        sum=$(cat "$TMP/$kind.$i.body" 2>/dev/null | sha256sum | cut -d' ' -f1)
        if [ "${w%% *}" != 200 ] || [ "$sum" != "$WANT" ]; then
            bad=$((bad + 1))
            [ "$bad" -gt 1 ] || not_ok "$kind: download $i broken" \
                "curl: ${w:-nothing} $(head -c 300 "$TMP/$kind.$i.err")" "sha256 $sum"
        fi
    done
    [ "$bad" -gt 0 ] || ok "$kind: $N parallel 4 MiB downloads all 200 and intact"
    if [ "$ms" -le $((BATCH_MAX_S * 1000)) ]; then
        ok "$kind: the batch took ${ms} ms (bound ${BATCH_MAX_S} s)"
    else
        not_ok "$kind: the batch took ${ms} ms, over ${BATCH_MAX_S} s: a relay stalls" \
            "per download (status bytes s): $(cat "$TMP/$kind".*.w | tr '\n' ';')"
    fi
}

batch 8443 content-length
batch 8444 chunked

# The upstreams saw one request per download; the proxy logged them as allowed 200s.
n_ok=$(grep -c '"path":"/big/[0-9]*".*"status":200' "$AUDIT" || true)
expect_eq "$n_ok" $((2 * N)) "audit: $((2 * N)) relays logged with status 200"
expect_not_in "$AUDIT" "mid-response" "audit: no relay cut short"

# A slow reader (4 MiB/s) of 16 MiB still gets every byte; a fast download
# on another connection finishes while it is still reading.
fetch slow "https://upstream.test:8445/slow" --limit-rate 4M
sleep 0.5
t0=$(now_ms)
fetch fast "https://upstream.test:8444/fast"
wait "${FETCH_PIDS[1]}" || true
fast_ms=$(($(now_ms) - t0))
slow_running=no
kill -0 "${FETCH_PIDS[0]}" 2>/dev/null && slow_running=yes
wait_fetches
check_body fast "$WANT" "a fast download beside a slow reader is intact"
expect_eq "$slow_running" yes "the fast download finished (${fast_ms} ms) while the slow reader was still reading"
check_body slow "$WANT_HUGE" "the slow reader (curl --limit-rate 4M) gets the whole 16 MiB"

live_stop
finish
