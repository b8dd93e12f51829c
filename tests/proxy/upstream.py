#!/usr/bin/python3
"""tests/proxy/upstream.py - a recording HTTP/1.1 test upstream (stdlib only).

Usage:
  upstream.py --listen ADDR:PORT [--tls CERT.pem KEY.pem] --log FILE [--mode MODE]

ADDR is an IPv4 or IPv6 literal ("[::1]:0" or "::1:0"); PORT 0 picks a free
port.  Once listening it prints exactly "ready <port>" on stdout.

Every byte received on every connection (after TLS decryption) is appended
to FILE, with "\n=== conn N ===\n" written when connection N is accepted.
Concurrent connections may interleave in the log; tests grep it.

MODE (default echo):
  echo        200 application/json {"method", "path" (raw target), "headers"
              ([[name, value], ...] as received), "body_len", "body_sha256",
              "conn", "sni" (null without TLS), "alpn"}
  status:N    status N, empty body
  size:N      200, N bytes of 'x' with Content-Length
  chunked:N   200, N bytes of 'x', chunked in 4 KiB chunks
  text:FILE   200 text/html with FILE's content (read per request)
  gzip:FILE   the same, gzip-compressed, with Content-Encoding: gzip
  bin:FILE    200 application/octet-stream with FILE's content, Content-Length
  hdrecho     200 text/plain "ok", the request's Authorization (if any) echoed
              in the response header X-Seen-Authorization
  sse:FILE    200 text/event-stream (chunked), one "data:" event per line of
              FILE, 50 ms apart
  raw         never answers, only records

Requests are parsed (keep-alive, Content-Length and chunked bodies,
Expect: 100-continue).  A head the parser cannot make sense of gets a 400 and
the connection is closed.  Every response carries X-Upstream-Conn: N.
SIGTERM and SIGINT exit with status 0.
"""

import argparse
import hashlib
import gzip
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

MAX_HEAD = 256 * 1024
REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 304: "Not Modified",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 413: "Payload Too Large", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}


class BadRequest(Exception):
    pass


class Closed(Exception):
    pass


class ByteLog:
    """Appends raw bytes to the log file; one lock for all connections."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lock = threading.Lock()
        self.conns = 0

    def new_conn(self):
        with self.lock:
            self.conns += 1
            n = self.conns
            os.write(self.fd, ("\n=== conn %d ===\n" % n).encode())
            return n

    def write(self, data):
        with self.lock:
            os.write(self.fd, data)


class Reader:
    """Buffered reader over a socket that logs everything it receives."""

    def __init__(self, sock, log):
        self.sock = sock
        self.log = log
        self.buf = b""

    def fill(self):
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLError, OSError):
            data = b""
        if not data:
            raise Closed()
        self.log.write(data)
        self.buf += data

    def readline(self, limit):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self.fill()

    def read(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def drain_forever(self):
        while True:
            self.buf = b""
            self.fill()


def strip_crlf(line):
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def read_head(rd):
    """Returns (method, target, version, [(name, value)]) or raises Closed."""
    line = rd.readline(MAX_HEAD)
    while line in (b"\r\n", b"\n"):  # tolerate leading empty lines (RFC 9112 2.2)
        line = rd.readline(MAX_HEAD)
    parts = strip_crlf(line).split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise BadRequest("bad request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    if not version.startswith("HTTP/1."):
        raise BadRequest("bad version")
    headers = []
    total = len(line)
    while True:
        line = rd.readline(MAX_HEAD)
        total += len(line)
        if total > MAX_HEAD:
            raise BadRequest("head too large")
        line = strip_crlf(line)
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            raise BadRequest("obs-fold")
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return method, target, version, headers


def hget(headers, name):
    name = name.lower()
    return [v for n, v in headers if n.lower() == name]


def read_body(rd, headers):
    te = hget(headers, "transfer-encoding")
    if te:
        codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
        if not codings or codings[-1] != "chunked":
            raise BadRequest("unsupported transfer-encoding")
        body = []
        while True:
            size_line = strip_crlf(rd.readline(4096))
            size_txt = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size < 0 or not size_txt or len(size_txt) > 16:
                raise BadRequest("bad chunk size")
            if size == 0:
                while strip_crlf(rd.readline(MAX_HEAD)):  # trailers
                    pass
                return b"".join(body)
            body.append(rd.read(size))
            if strip_crlf(rd.readline(4096)):
                raise BadRequest("bad chunk end")
    cl = hget(headers, "content-length")
    if cl:
        vals = {c.strip() for v in cl for c in v.split(",")}
        if len(vals) != 1:
            raise BadRequest("conflicting content-length")
        v = vals.pop()
        if not v.isdigit():
            raise BadRequest("bad content-length")
        return rd.read(int(v))
    return b""


def head_bytes(status, fields):
    lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
    lines += ["%s: %s" % (n, v) for n, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_chunked(sock, data, piece=4096):
    for i in range(0, len(data), piece):
        c = data[i: i + piece]
        sock.sendall(b"%x\r\n%s\r\n" % (len(c), c))
    sock.sendall(b"0\r\n\r\n")


class Server:
    def __init__(self, args):
        self.args = args
        self.log = ByteLog(args.log)
        self.mode, _, self.arg = args.mode.partition(":")
        if self.mode not in ("echo", "status", "size", "chunked", "text", "gzip", "sse",
                             "raw", "bin", "hdrecho"):
            sys.exit("upstream.py: unknown mode %r" % args.mode)
        if self.mode in ("status", "size", "chunked"):
            self.num = int(self.arg)
        if self.mode in ("text", "gzip", "sse", "bin") and not self.arg:
            sys.exit("upstream.py: mode %s needs a file" % self.mode)
        self.ctx = None
        if args.tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(args.tls[0], args.tls[1])
            self.ctx.set_alpn_protocols(["http/1.1"])
            self.ctx.sni_callback = self.on_sni
        host, _, port = args.listen.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.lsock.bind((host, int(port)))
        self.lsock.listen(512)
        self.sni = {}

    @staticmethod
    def on_sni(sslsock, name, _ctx):
        sslsock.sni_name = name

    def serve(self):
        print("ready %d" % self.lsock.getsockname()[1], flush=True)
        while True:
            sock, _ = self.lsock.accept()
            n = self.log.new_conn()
            threading.Thread(target=self.conn, args=(sock, n), daemon=True).start()

    def conn(self, sock, n):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sni = alpn = None
            if self.ctx:
                sock.settimeout(30)
                sock = self.ctx.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
                sni = getattr(sock, "sni_name", None)
                alpn = sock.selected_alpn_protocol()
            rd = Reader(sock, self.log)
            if self.mode == "raw":
                rd.drain_forever()
            while True:
                try:
                    method, target, version, headers = read_head(rd)
                    if any(v.lower() == "100-continue" for v in hget(headers, "expect")) and \
                            version == "HTTP/1.1":
                        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    body = read_body(rd, headers)
                except BadRequest as e:
                    msg = ("bad request: %s\n" % e).encode()
                    sock.sendall(head_bytes(400, [("Content-Type", "text/plain"),
                                                  ("Content-Length", len(msg)),
                                                  ("Connection", "close"),
                                                  ("X-Upstream-Conn", n)]) + msg)
                    return
                conn_hdr = ",".join(hget(headers, "connection")).lower()
                close = "close" in conn_hdr or (version == "HTTP/1.0" and
                                                "keep-alive" not in conn_hdr)
                info = {"method": method, "path": target,
                        "headers": [[k, v] for k, v in headers],
                        "body_len": len(body),
                        "body_sha256": hashlib.sha256(body).hexdigest(),
                        "conn": n, "sni": sni, "alpn": alpn}
                self.respond(sock, method, info, close, n)
                if close:
                    return
        except (Closed, ssl.SSLError, OSError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def respond(self, sock, method, info, close, n):
        fields = [("X-Upstream-Conn", n)]
        if close:
            fields.append(("Connection", "close"))
        head_only = method == "HEAD"
        m = self.mode
        if m == "echo":
            body = (json.dumps(info) + "\n").encode()
            fields += [("Content-Type", "application/json"), ("Content-Length", len(body))]
            sock.sendall(head_bytes(200, fields) + (b"" if head_only else body))
        elif m == "status":
            if not (self.num < 200 or self.num in (204, 304)):
                fields.append(("Content-Length", 0))
            sock.sendall(head_bytes(self.num, fields))
        elif m == "size":
            fields += [("Content-Type", "text/plain"), ("Content-Length", self.num)]
            sock.sendall(head_bytes(200, fields))
            if not head_only:
                left = self.num
                piece = b"x" * 65536
                while left > 0:
                    k = min(left, len(piece))
                    sock.sendall(piece[:k])
                    left -= k
        elif m == "chunked":
            fields += [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")]
            sock.sendall(head_bytes(200, fields))
            if not head_only:
                send_chunked(sock, b"x" * self.num)
            else:
                sock.sendall(b"0\r\n\r\n")
        elif m == "text":
            with open(self.arg, "rb") as f:
                body = f.read()
            fields += [("Content-Type", "text/html; charset=utf-8"),
                       ("Content-Length", len(body))]
            sock.sendall(head_bytes(200, fields) + (b"" if head_only else body))
        elif m == "bin":
            with open(self.arg, "rb") as f:
                body = f.read()
            fields += [("Content-Type", "application/octet-stream"),
                       ("Content-Length", len(body))]
            sock.sendall(head_bytes(200, fields) + (b"" if head_only else body))
        elif m == "hdrecho":
            for seen in hget(info["headers"], "authorization"):
                fields.append(("X-Seen-Authorization", seen))
            fields += [("Content-Type", "text/plain"), ("Content-Length", 3)]
            sock.sendall(head_bytes(200, fields) + (b"" if head_only else b"ok\n"))
        elif m == "gzip":
            with open(self.arg, "rb") as f:
                body = gzip.compress(f.read(), mtime=0)
            fields += [("Content-Type", "text/html; charset=utf-8"),
                       ("Content-Encoding", "gzip"), ("Content-Length", len(body))]
            sock.sendall(head_bytes(200, fields) + (b"" if head_only else body))
        elif m == "sse":
            with open(self.arg, "rb") as f:
                lines = f.read().splitlines()
            fields += [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                       ("Transfer-Encoding", "chunked")]
            sock.sendall(head_bytes(200, fields))
            if not head_only:
                for i, line in enumerate(lines):
                    if i:
                        time.sleep(0.05)
                    ev = b"data: " + line + b"\n\n"
                    sock.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
            sock.sendall(b"0\r\n\r\n")


def main():
    ap = argparse.ArgumentParser(description="recording HTTP/1.1 test upstream")
    ap.add_argument("--listen", required=True, metavar="ADDR:PORT")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--log", required=True, metavar="FILE")
    ap.add_argument("--mode", default="echo")
    args = ap.parse_args()

    def stop(_sig, _frm):
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    Server(args).serve()


if __name__ == "__main__":
    main()
