#!/usr/bin/python3
"""tests/proxy/githttp.py - a recording smart-HTTP git server (stdlib only).

Usage:
  githttp.py --listen ADDR:PORT --tls CERT.pem KEY.pem --root DIR --log FILE

Requests whose path starts with /git/ are handed to `git http-backend` as a
CGI (GIT_PROJECT_ROOT=DIR, GIT_HTTP_EXPORT_ALL=1, PATH_INFO the path after
/git, QUERY_STRING, CONTENT_TYPE, CONTENT_LENGTH and every request header as
HTTP_*), so fetches are served and a push is accepted when the repository has
http.receivepack true.  Any other path gets 200 application/json
{"method", "path", "body_len"}.

Every byte received on every connection (after TLS decryption) is appended to
FILE, with "\n=== git conn N ===\n" written when connection N is accepted,
as upstream.py does.  Once listening it prints exactly "ready <port>".
Keep-alive, Content-Length and chunked request bodies; responses always
carry Content-Length.  SIGTERM and SIGINT exit with status 0.
"""

import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024


class Closed(Exception):
    pass


class BadRequest(Exception):
    pass


class ByteLog:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lock = threading.Lock()
        self.conns = 0

    def new_conn(self):
        with self.lock:
            self.conns += 1
            os.write(self.fd, ("\n=== git conn %d ===\n" % self.conns).encode())
            return self.conns

    def write(self, data):
        with self.lock:
            os.write(self.fd, data)


class Reader:
    def __init__(self, sock, log):
        self.sock, self.log, self.buf = sock, log, b""

    def fill(self):
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLError, OSError):
            data = b""
        if not data:
            raise Closed()
        self.log.write(data)
        self.buf += data

    def readline(self):
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise BadRequest("line too long")
            self.fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def read(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def read_request(rd):
    line = rd.readline()
    while not line:
        line = rd.readline()
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise BadRequest("bad request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    headers = []
    while True:
        line = rd.readline()
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise BadRequest("bad header line")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    lower = {}
    for n, v in headers:
        lower.setdefault(n.lower(), []).append(v)
    te = ",".join(lower.get("transfer-encoding", [])).lower()
    if te:
        if te.split(",")[-1].strip() != "chunked":
            raise BadRequest("unsupported transfer-encoding")
        body = []
        while True:
            size = int(rd.readline().split(b";")[0].strip() or b"x", 16)
            if size == 0:
                while rd.readline():
                    pass
                break
            body.append(rd.read(size))
            rd.readline()
        body = b"".join(body)
    elif "content-length" in lower:
        n = int(lower["content-length"][0])
        if n < 0 or n > MAX_BODY:
            raise BadRequest("bad content-length")
        body = rd.read(n)
    else:
        body = b""
    return method, target, version, headers, lower, body


def response(status, reason, fields, body, close):
    head = ["HTTP/1.1 %d %s" % (status, reason)]
    head += ["%s: %s" % (n, v) for n, v in fields if n.lower() not in
             ("content-length", "connection", "transfer-encoding")]
    head.append("Content-Length: %d" % len(body))
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class Server:
    def __init__(self, args):
        self.root = os.path.abspath(args.root)
        self.log = ByteLog(args.log)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(args.tls[0], args.tls[1])
        self.ctx.set_alpn_protocols(["http/1.1"])
        host, _, port = args.listen.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, int(port)))
        self.lsock.listen(128)

    def serve(self):
        print("ready %d" % self.lsock.getsockname()[1], flush=True)
        while True:
            sock, peer = self.lsock.accept()
            n = self.log.new_conn()
            threading.Thread(target=self.conn, args=(sock, peer, n), daemon=True).start()

    def conn(self, sock, peer, n):
        try:
            sock.settimeout(30)
            sock = self.ctx.wrap_socket(sock, server_side=True)
            rd = Reader(sock, self.log)
            while True:
                try:
                    method, target, version, headers, lower, body = read_request(rd)
                except (BadRequest, ValueError) as e:
                    msg = ("bad request: %s\n" % e).encode()
                    sock.sendall(response(400, "Bad Request", [("Content-Type", "text/plain")],
                                          msg, True))
                    return
                conn_hdr = ",".join(lower.get("connection", [])).lower()
                close = "close" in conn_hdr or version == "HTTP/1.0"
                path, _, query = target.partition("?")
                if path.startswith("/git/"):
                    out = self.cgi(method, path[len("/git"):], query, headers, lower, body, peer,
                                   close)
                else:
                    msg = ('{"method": "%s", "path": "%s", "body_len": %d}\n' %
                           (method, target.replace('"', "%22"), len(body))).encode()
                    out = response(200, "OK", [("Content-Type", "application/json")], msg, close)
                sock.sendall(out)
                if close:
                    return
        except (Closed, ssl.SSLError, OSError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def cgi(self, method, path_info, query, headers, lower, body, peer, close):
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": self.root,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": "githttp.py",
            "REQUEST_METHOD": method,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "REMOTE_ADDR": str(peer[0]),
            "CONTENT_LENGTH": str(len(body)),
        }
        if "content-type" in lower:
            env["CONTENT_TYPE"] = lower["content-type"][0]
        for n, v in headers:
            key = "HTTP_" + n.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                env[key] = v
        p = subprocess.run(["git", "http-backend"], input=body, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sys.stderr.buffer.write(p.stderr)
        sys.stderr.flush()
        out = p.stdout
        sep = out.find(b"\r\n\r\n")
        skip = 4
        if sep < 0 or out.find(b"\n\n") >= 0 and out.find(b"\n\n") < sep:
            sep, skip = out.find(b"\n\n"), 2
        if p.returncode != 0 and sep < 0:
            return response(500, "Internal Server Error", [("Content-Type", "text/plain")],
                            b"http-backend failed\n", close)
        status, reason, fields = 200, "OK", []
        for line in out[:sep].decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            value = value.strip()
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                status = int(code)
            else:
                fields.append((name, value))
        return response(status, reason or "Status", fields, out[sep + skip:], close)


def main():
    ap = argparse.ArgumentParser(description="recording smart-HTTP git server")
    ap.add_argument("--listen", required=True, metavar="ADDR:PORT")
    ap.add_argument("--tls", nargs=2, required=True, metavar=("CERT", "KEY"))
    ap.add_argument("--root", required=True)
    ap.add_argument("--log", required=True, metavar="FILE")
    args = ap.parse_args()

    def stop(_sig, _frm):
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    Server(args).serve()


if __name__ == "__main__":
    main()
