"""bench/mitm_addon.py - the predecessor's job for mitmdump, for bench/compare-proxies.sh.

A small mitmproxy (8.x) addon doing what bottle-proxy does on the benchmark's
route, so the two are compared on the same work:

  * allowlist: CONNECT and requests only to a listed host and port (403
    otherwise, before any upstream connection is made);
  * auth: every Authorization / Proxy-Authorization the client sent is
    removed and "Authorization: Bearer <secret>" is injected for a host
    within the secret's binding;
  * outbound DLP: one compiled regex set over URL, headers and the whole
    body for a handful of widely used token formats, plus a literal check
    for the known secret value in raw, base64 (three alignments), base64url,
    hex and percent-encoded forms; a hit is a 403 and nothing is forwarded;
  * echoed secrets: every form above found in a response's headers or body
    is replaced by "[REDACTED:UPSTREAM_TOKEN]" (bottle-proxy redacts every
    response when it holds secrets);
  * static host entries: the upstream is dialled at the address given for
    its name (no DNS lookup ever; a name without an entry is refused), the
    name is kept for SNI and certificate verification.

Options (mitmdump --set NAME=VALUE):
  bench_allow        "host:port[,host:port...]"
  bench_hosts        "name=ip[,name=ip...]"
  bench_secret_file  file holding the secret value (one line)
  bench_secret_hosts "host[,host...]" the secret's binding
"""

import base64
import re
import urllib.parse

from mitmproxy import ctx, http

# A handful of the formats of lib/detectors.rules, as one alternation.
TOKEN_RE = re.compile(
    rb"(?<![A-Za-z0-9_-])(?:"
    rb"gh[pousr]_[A-Za-z0-9]{36}"
    rb"|github_pat_[A-Za-z0-9_]{82}"
    rb"|glpat-[A-Za-z0-9_-]{20,}"
    rb"|sk-ant-[A-Za-z0-9_-]{32,}"
    rb"|sk-or-v1-[0-9a-f]{64}"
    rb"|A[KS]IA[A-Z0-9]{16}"
    rb"|AIza[A-Za-z0-9_-]{35}"
    rb"|xox[abeprs]-[A-Za-z0-9-]{10,}"
    rb"|[sr]k_live_[A-Za-z0-9]{24,}"
    rb"|npm_[A-Za-z0-9]{36}"
    rb"|hf_[A-Za-z0-9]{34}"
    rb"|dckr_pat_[A-Za-z0-9_-]{24,40}"
    rb"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    rb"|-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----"
    rb")"
)


def encoded_forms(value: bytes):
    """The literal forms of one secret value that are looked for."""
    forms = {value, value.hex().encode(), value.hex().upper().encode(),
             urllib.parse.quote(value, safe="").encode()}
    for pad in (b"", b"\0", b"\0\0"):
        # base64 of the value at each alignment: keep the part that does not
        # depend on the neighbouring bytes.
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            e = enc(pad + value).rstrip(b"=")
            skip = (len(pad) * 4 + 2) // 3
            tail = len(e) - ((len(pad) + len(value)) % 3 != 0)
            forms.add(e[skip:tail])
    return sorted((f for f in forms if len(f) >= 8), key=len)


def csv(s):
    return [x.strip() for x in s.split(",") if x.strip()]


class Bench:
    def __init__(self):
        self.allow = set()
        self.hosts = {}
        self.secret = None
        self.secret_forms = []
        self.secret_hosts = set()

    def load(self, loader):
        loader.add_option("bench_allow", str, "", "host:port,... allowed")
        loader.add_option("bench_hosts", str, "", "name=ip,... static host entries")
        loader.add_option("bench_secret_file", str, "", "file with the secret value")
        loader.add_option("bench_secret_hosts", str, "", "host,... the secret's binding")

    def configure(self, updated):
        o = ctx.options
        self.allow = set()
        for hp in csv(o.bench_allow):
            h, _, p = hp.rpartition(":")
            self.allow.add((h.lower(), int(p)))
        self.hosts = dict(x.split("=", 1) for x in csv(o.bench_hosts))
        self.secret_hosts = set(h.lower() for h in csv(o.bench_secret_hosts))
        if o.bench_secret_file:
            with open(o.bench_secret_file, "rb") as f:
                self.secret = f.read().strip()
            self.secret_forms = encoded_forms(self.secret)

    @staticmethod
    def deny(flow, reason):
        flow.response = http.Response.make(
            403, ("denied: %s\n" % reason).encode(), {"Content-Type": "text/plain"})

    def allowed(self, host, port):
        return (host.lower(), port) in self.allow

    def http_connect(self, flow: http.HTTPFlow):
        if not self.allowed(flow.request.host, flow.request.port):
            self.deny(flow, "host not allowed")

    def server_connect(self, data):
        host, port = data.server.address
        ip = self.hosts.get(host.lower())
        if ip is None:
            data.server.error = "no static host entry for %s" % host
            return
        if data.server.sni is None:
            data.server.sni = host
        data.server.address = (ip, port)

    def request(self, flow: http.HTTPFlow):
        req = flow.request
        # Inside a bumped tunnel req.host is the dialled address (see
        # server_connect): policy goes by the Host header, which must name
        # the CONNECT target (kept as the upstream SNI).
        host = req.pretty_host.lower()
        target = (flow.server_conn.sni or "").lower()
        if not self.allowed(host, req.port) or host != target:
            self.deny(flow, "host not allowed")
            return
        req.headers.pop("Authorization", None)
        req.headers.pop("Proxy-Authorization", None)
        blob = b"\n".join([
            req.url.encode("utf-8", "surrogateescape"),
            bytes(req.headers),
            req.raw_content or b"",
        ])
        if TOKEN_RE.search(blob):
            self.deny(flow, "dlp token_patterns")
            return
        for f in self.secret_forms:
            if f in blob:
                self.deny(flow, "dlp known_secrets")
                return
        if self.secret is not None and host in self.secret_hosts:
            req.headers["Authorization"] = "Bearer " + self.secret.decode()

    def response(self, flow: http.HTTPFlow):
        resp = flow.response
        if resp is None or not self.secret_forms:
            return
        mark = b"[REDACTED:UPSTREAM_TOKEN]"
        for k, v in resp.headers.items(multi=True):
            vb = v.encode("utf-8", "surrogateescape")
            if any(f in vb for f in self.secret_forms):
                for f in reversed(self.secret_forms):  # longest first
                    vb = vb.replace(f, mark)
                resp.headers[k] = vb.decode("utf-8", "surrogateescape")
        body = resp.raw_content
        if body and any(f in body for f in self.secret_forms):
            for f in reversed(self.secret_forms):
                body = body.replace(f, mark)
            resp.raw_content = body


addons = [Bench()]
