#!/usr/bin/env python3
"""fakeforge.py - a local HTTPS forge for the forge driver tests.

Serves the deploy-key endpoints of one forge the way its documentation
says that forge answers them (status codes, bodies, pagination and
rate-limit headers), with a small page size so that listing takes several
pages, plus a control API under /_fake/ for the test:

  gitea   /api/v1/repos/{owner}/{repo}/keys[/{id}]   Authorization: token|Bearer
          page/limit, limit capped, X-Total-Count; 422 on a duplicate key/title
  github  /repos/{owner}/{repo}/keys[/{id}]         Authorization: Bearer|token
          per_page/page, Link rel=next|last|first|prev pointing at
          /repositories/{id}/keys (served too), X-RateLimit-*; 422 "key is
          already in use"; 403 without a User-Agent
  gitlab  /api/v4/projects/{url-encoded path}/deploy_keys[/{id}]
          PRIVATE-TOKEN (or Authorization: Bearer); per_page/page, X-Next-Page,
          X-Total(-Pages), Link, RateLimit-*; adding a key the project has
          answers 201 with that key (GitLab does not refuse it)

Control (no auth), JSON bodies:
  POST /_fake/fault    {"count":N, "status":S, "headers":{...}, "body":{...},
                        "method":"GET", "retry_after_in":s, "retry_after_date_in":s,
                        "reset_in":s, "link":"...", "drop_headers":[...]}
                        - the next N matching requests
                        answer with that fault instead (status 0: answer
                        normally, with the fault's headers added and
                        drop_headers left out of list answers); reset_in
                        also reports the rate limit used up until now+s and
                        enforces it (an earlier request is a violation)
  POST /_fake/seed     {"repo":..., "title":..., "key":..., "read_only":bool}
  GET  /_fake/keys     every repo's keys: {"owner/repo": [{"id", "title", "key",
                        "sha256", "read_only"}...]} (what the forge holds, for
                        tests; `authorized_keys` output: ?format=authorized_keys
                        prints one "key" line per writable key, for an sshd)
  GET  /_fake/log      every request: method, path, headers, body, status, time
  GET  /_fake/stats    {"violations": n}
  POST /_fake/clear    empties the log

Usage: fakeforge.py --forge gitea|github|gitlab --cert C --key K --port-file F
                    [--page-max 2] [--repo PATH[:noadmin]]...
The token is read from the environment (FAKEFORGE_TOKEN), never argv.
Standard library only.
"""
import argparse
import base64
import email.utils
import hashlib
import http.server
import json
import math
import os
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com")


class Forge:
    def __init__(self, kind, token, page_max, repos):
        self.kind = kind
        self.token = token
        self.page_max = page_max
        self.lock = threading.Lock()
        self.repos = {}  # path -> {"id": n, "noadmin": bool, "keys": [key...]}
        for i, spec in enumerate(repos):
            path, _, flag = spec.partition(":")
            self.repos[path] = {"id": 1000 + i, "noadmin": flag == "noadmin", "keys": []}
        self.next_id = 100
        self.faults = []
        self.log = []
        self.blocked_until = 0.0
        self.violations = 0


def key_blob(line):
    """The decoded key blob of an OpenSSH public key line, or None."""
    parts = line.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        return None
    # the blob starts with its own type name (RFC 4253 string)
    if len(blob) < 4:
        return None
    n = int.from_bytes(blob[:4], "big")
    if blob[4:4 + n] != parts[0].encode():
        return None
    return blob


def fingerprint_sha256(blob):
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def fingerprint_md5(blob):
    return ":".join("%02x" % b for b in hashlib.md5(blob).digest())


def http_date(t):
    return email.utils.formatdate(t, usegmt=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeforge/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ------------------------------------------------------------ plumbing
    @property
    def forge(self):
        return self.server.forge

    def origin(self):
        return "https://localhost:%d" % self.server.server_address[1]

    def send(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        hdrs = dict(self.rate_headers())
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, v)
        if status != 204:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 204 and self.command != "HEAD":
            self.wfile.write(data)
        self.entry["status"] = status
        self.entry["response_headers"] = hdrs

    def rate_headers(self):
        f = self.forge
        now = time.time()
        limited = f.blocked_until > now
        reset = int(math.ceil(f.blocked_until)) if limited else int(now) + 3600
        remaining = 0 if limited else 4999
        if f.kind == "github":
            return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(remaining),
                    "X-RateLimit-Used": str(5000 - remaining), "X-RateLimit-Reset": str(reset),
                    "X-RateLimit-Resource": "core"}
        if f.kind == "gitlab":
            return {"RateLimit-Limit": "2000", "RateLimit-Observed": str(2000 - remaining),
                    "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset),
                    "RateLimit-ResetTime": http_date(reset)}
        return {}

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        self.entry["body"] = raw.decode("utf-8", "replace")
        return raw

    def json_body(self):
        raw = self.read_body()
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    # ------------------------------------------------------------ dispatch
    def handle_any(self):
        f = self.forge
        self.entry = {"method": self.command, "path": self.path,
                      "headers": {k: v for k, v in self.headers.items()},
                      "time": time.time(), "body": ""}
        try:
            if self.path.startswith("/_fake/"):
                self.control()
                return
            with f.lock:
                f.log.append(self.entry)
            if f.blocked_until > time.time():
                with f.lock:
                    f.violations += 1
                self.read_body()
                self.rate_limited()
                return
            fault = self.take_fault()
            if fault and fault.get("status"):
                self.read_body()
                self.apply_fault(fault)
                return
            self.fault_headers = self.fault_extra(fault) if fault else {}
            self.fault_drop = fault.get("drop_headers", []) if fault else []
            if not self.authorized():
                self.read_body()
                self.unauthorized()
                return
            self.route()
        except BrokenPipeError:
            pass

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = handle_any

    def take_fault(self):
        f = self.forge
        with f.lock:
            for flt in f.faults:
                if flt.get("method") and flt["method"] != self.command:
                    continue
                flt["count"] -= 1
                if flt["count"] <= 0:
                    f.faults.remove(flt)
                return flt
        return None

    def fault_extra(self, flt):
        """Headers a fault adds; reset_in also starts the rate-limit window."""
        now = time.time()
        hdrs = dict(flt.get("headers") or {})
        if "retry_after_in" in flt:
            hdrs["Retry-After"] = str(flt["retry_after_in"])
        if "retry_after_date_in" in flt:
            hdrs["Retry-After"] = http_date(int(now) + 1 + flt["retry_after_date_in"])
        if "reset_in" in flt:
            reset = int(now) + 1 + flt["reset_in"]
            with self.forge.lock:
                self.forge.blocked_until = reset
            if self.forge.kind == "gitlab":
                hdrs.update({"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset),
                             "RateLimit-ResetTime": http_date(reset)})
            else:
                hdrs.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
        if "link" in flt:
            hdrs["Link"] = flt["link"]
        return hdrs

    def apply_fault(self, flt):
        body = flt.get("body")
        if body is None:
            body = {"message": "fault %d injected" % flt["status"]}
        self.send(flt["status"], body, self.fault_extra(flt))

    def rate_limited(self):
        f = self.forge
        if f.kind == "github":
            self.send(403, {"message": "API rate limit exceeded for user ID 1.",
                            "documentation_url": "https://docs.github.com/rest/overview/"
                            "resources-in-the-rest-api#rate-limiting", "status": "403"})
        elif f.kind == "gitlab":
            self.send(429, {"message": "Retry later"},
                      {"Retry-After": str(max(1, int(math.ceil(f.blocked_until - time.time()))))})
        else:
            self.send(429, {"message": "rate limited"})

    # ------------------------------------------------------------ auth
    def authorized(self):
        tok = self.forge.token
        auth = self.headers.get("Authorization", "")
        kind = self.forge.kind
        if kind == "gitea":
            return auth in ("token " + tok, "Bearer " + tok)
        if kind == "github":
            return auth in ("Bearer " + tok, "token " + tok)
        return self.headers.get("PRIVATE-TOKEN") == tok or auth == "Bearer " + tok

    def unauthorized(self):
        kind = self.forge.kind
        if kind == "gitea":
            self.send(401, {"message": "invalid username, password or token",
                            "url": self.origin() + "/api/swagger"})
        elif kind == "github":
            self.send(401, {"message": "Bad credentials",
                            "documentation_url": "https://docs.github.com/rest", "status": "401"})
        else:
            self.send(401, {"message": "401 Unauthorized"})

    # ------------------------------------------------------------ routes
    def route(self):
        kind = self.forge.kind
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        parts = u.path.split("/")
        if kind == "gitea" and u.path.startswith("/api/v1/repos/") and len(parts) in (7, 8) \
                and parts[6] == "keys":
            return self.keys(parts[4] + "/" + parts[5], parts[7] if len(parts) == 8 else None, q)
        if kind == "github":
            if self.headers.get("User-Agent") is None:
                return self.send(403, {"message": "Request forbidden by administrative rules. "
                                       "Please make sure your request has a User-Agent header "
                                       "(https://docs.github.com/en/rest/overview/"
                                       "resources-in-the-rest-api#user-agent-required)."})
            ver = self.headers.get("X-GitHub-Api-Version")
            if ver is not None and ver not in ("2022-11-28", "2026-03-10"):
                return self.send(400, {"message": "API version %s is not supported." % ver})
            if u.path.startswith("/repos/") and len(parts) in (5, 6) and parts[4] == "keys":
                return self.keys(parts[2] + "/" + parts[3], parts[5] if len(parts) == 6 else None,
                                 q)
            if u.path.startswith("/repositories/") and len(parts) == 4 and parts[3] == "keys":
                for path, r in self.forge.repos.items():
                    if str(r["id"]) == parts[2]:
                        return self.keys(path, None, q)
                return self.not_found(repo=True)
        if kind == "gitlab" and u.path.startswith("/api/v4/projects/") and len(parts) in (6, 7) \
                and parts[5] == "deploy_keys":
            # the id is one URL-encoded segment: a raw '/' would not route here
            return self.keys(urllib.parse.unquote(parts[4]), parts[6] if len(parts) == 7 else None,
                             q)
        self.read_body()
        self.send(404, {"message": "Not Found"} if kind != "gitlab" else
                  {"error": "404 Not Found"})

    def not_found(self, repo):
        kind = self.forge.kind
        if kind == "gitea":
            self.send(404, {"errors": ["repository does not exist"] if repo else None,
                            "message": "The target couldn't be found.",
                            "url": self.origin() + "/api/swagger"})
        elif kind == "github":
            self.send(404, {"message": "Not Found",
                            "documentation_url": "https://docs.github.com/rest/deploy-keys",
                            "status": "404"})
        else:
            self.send(404, {"message": "404 Project Not Found" if repo else
                            "404 Deploy key Not Found"})

    def forbidden(self):
        kind = self.forge.kind
        if kind == "gitea":
            self.send(403, {"message": "user should be an owner or a collaborator with admin "
                            "write of a repository", "url": self.origin() + "/api/swagger"})
        elif kind == "github":
            self.send(403, {"message": "Resource not accessible by personal access token",
                            "documentation_url": "https://docs.github.com/rest/deploy-keys",
                            "status": "403"})
        else:
            self.send(403, {"message": "403 Forbidden"})

    def keys(self, repo_path, key_id, q):
        f = self.forge
        repo = f.repos.get(repo_path)
        if repo is None:
            self.read_body()
            return self.not_found(repo=True)
        if repo["noadmin"]:
            self.read_body()
            return self.forbidden()
        if key_id is None and self.command == "GET":
            return self.list_keys(repo_path, repo, q)
        if key_id is None and self.command == "POST":
            return self.add_key(repo, self.json_body())
        if key_id is not None and self.command == "DELETE":
            self.read_body()
            with f.lock:
                for k in repo["keys"]:
                    if str(k["id"]) == key_id:
                        repo["keys"].remove(k)
                        return self.send(204)
            return self.not_found(repo=False)
        self.read_body()
        self.send(405, {"message": "Method Not Allowed"})

    def render(self, k):
        kind = self.forge.kind
        if kind == "gitea":
            return {"id": k["id"], "key_id": 0, "key": k["key"], "title": k["title"],
                    "url": "%s/api/v1/repos/x/keys/%d" % (self.origin(), k["id"]),
                    "fingerprint": k["sha256"], "created_at": k["created"],
                    "read_only": k["read_only"]}
        if kind == "github":
            return {"id": k["id"], "key": k["key"], "url": "https://api.github.com/x",
                    "title": k["title"], "verified": True, "created_at": k["created"],
                    "read_only": k["read_only"], "added_by": "octocat", "last_used": None,
                    "enabled": True}
        return {"id": k["id"], "title": k["title"], "created_at": k["created"],
                "expires_at": None, "key": k["key"], "fingerprint": k["md5"],
                "fingerprint_sha256": k["sha256"], "can_push": not k["read_only"]}

    def new_key(self, title, line, read_only):
        f = self.forge
        blob = key_blob(line)
        f.next_id += 1
        return {"id": f.next_id, "title": title, "key": " ".join(line.split()[:2]),
                "sha256": fingerprint_sha256(blob), "md5": fingerprint_md5(blob),
                "read_only": read_only,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def add_key(self, repo, body):
        f = self.forge
        kind = f.kind
        if not isinstance(body, dict):
            return self.send(400, {"message": "Problems parsing JSON"})
        title, line = body.get("title"), body.get("key")
        if kind == "gitlab":
            if not isinstance(title, str) or not title:
                return self.send(400, {"error": "title is missing"})
            if not isinstance(line, str) or key_blob(line) is None:
                return self.send(400, {"message": {"deploy_key.key": ["is invalid"]}})
            with f.lock:
                blob = key_blob(line)
                for k in repo["keys"]:
                    if key_blob(k["key"]) == blob:
                        return self.send(201, self.render(k))
                k = self.new_key(title, line, not body.get("can_push", False))
                repo["keys"].append(k)
            return self.send(201, self.render(k))
        if not isinstance(line, str) or key_blob(line) is None:
            if kind == "github":
                return self.send(422, {"message": "Validation Failed", "errors": [
                    {"resource": "PublicKey", "code": "custom", "field": "key",
                     "message": "key is invalid. You must supply a key in OpenSSH public key "
                     "format"}], "status": "422"})
            return self.send(422, {"message": "Invalid key content: no key", "url": ""})
        if kind == "gitea" and (not isinstance(title, str) or not title):
            return self.send(422, {"message": "[Title]: Required", "url": ""})
        with f.lock:
            blob = key_blob(line)
            for k in repo["keys"]:
                if key_blob(k["key"]) == blob:
                    if kind == "github":
                        return self.send(422, {"message": "Validation Failed", "errors": [
                            {"resource": "PublicKey", "code": "custom", "field": "key",
                             "message": "key is already in use"}],
                            "documentation_url": "https://docs.github.com/rest/deploy-keys/"
                            "deploy-keys#create-a-deploy-key", "status": "422"})
                    return self.send(422, {"message": "This key has already been added to "
                                           "this repository", "url": ""})
                if kind == "gitea" and k["title"] == title:
                    return self.send(422, {"message": "A key with the same name already exists",
                                           "url": ""})
            # both default to read-only when read_only is left out
            k = self.new_key(title or "", line, body.get("read_only", True) is not False)
            repo["keys"].append(k)
        self.send(201, self.render(k))

    def list_keys(self, repo_path, repo, q):
        f = self.forge
        kind = f.kind
        self.read_body()

        def qint(name, default):
            try:
                v = int(q.get(name, [default])[0])
            except ValueError:
                v = default
            return v

        page = max(1, qint("page", 1))
        if kind == "gitea":
            per = qint("limit", 30)
        else:
            per = qint("per_page", 30 if kind == "github" else 20)
        per = max(1, min(per, f.page_max))
        with f.lock:
            keys = list(repo["keys"])
        total = len(keys)
        pages = max(1, (total + per - 1) // per)
        chunk = keys[(page - 1) * per:page * per]
        hdrs = dict(self.fault_headers)
        if kind == "gitea":
            hdrs.setdefault("X-Total-Count", str(total))
        elif kind == "github":
            base = "%s/repositories/%d/keys?per_page=%d&page=" % (self.origin(), repo["id"], per)
            rels = []
            if page < pages:
                rels += ['<%s%d>; rel="next"' % (base, page + 1),
                         '<%s%d>; rel="last"' % (base, pages)]
            if page > 1:
                rels += ['<%s1>; rel="first"' % base, '<%s%d>; rel="prev"' % (base, page - 1)]
            if rels:
                hdrs.setdefault("Link", ", ".join(rels))
        else:
            base = "%s/api/v4/projects/%s/deploy_keys?page=" % (
                self.origin(), urllib.parse.quote(repo_path, safe=""))
            rels = []
            if page < pages:
                rels.append('<%s%d&per_page=%d>; rel="next"' % (base, page + 1, per))
            if page > 1:
                rels.append('<%s%d&per_page=%d>; rel="prev"' % (base, page - 1, per))
            rels += ['<%s1&per_page=%d>; rel="first"' % (base, per),
                     '<%s%d&per_page=%d>; rel="last"' % (base, pages, per)]
            hdrs.setdefault("Link", ", ".join(rels))
            hdrs.update({"X-Page": str(page), "X-Per-Page": str(per),
                         "X-Next-Page": str(page + 1) if page < pages else "",
                         "X-Prev-Page": str(page - 1) if page > 1 else "",
                         "X-Total": str(total), "X-Total-Pages": str(pages)})
        for h in self.fault_drop:
            hdrs.pop(h, None)
        self.send(200, [self.render(k) for k in chunk], hdrs)

    # ------------------------------------------------------------ control
    def control(self):
        f = self.forge
        name = self.path[len("/_fake/"):]
        body = self.json_body() if self.command == "POST" else None
        if name == "fault" and isinstance(body, dict):
            body.setdefault("count", 1)
            with f.lock:
                f.faults.append(body)
            return self.send(200, {"ok": True})
        if name == "seed" and isinstance(body, dict):
            repo = f.repos[body["repo"]]
            with f.lock:
                k = self.new_key(body["title"], body["key"], bool(body.get("read_only")))
                repo["keys"].append(k)
            return self.send(200, {"id": k["id"]})
        if name.split("?")[0] == "keys":
            with f.lock:
                keys = {p: [dict(k) for k in r["keys"]] for p, r in f.repos.items()}
            if name.endswith("?format=authorized_keys"):
                text = "".join("%s %s\n" % (k["key"], k["title"]) for ks in keys.values()
                               for k in ks if not k["read_only"])
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            return self.send(200, keys)
        if name == "log":
            with f.lock:
                return self.send(200, list(f.log))
        if name == "stats":
            return self.send(200, {"violations": f.violations, "faults_left": len(f.faults)})
        if name == "clear":
            with f.lock:
                f.log.clear()
                f.faults.clear()
                f.blocked_until = 0.0
                f.violations = 0
            return self.send(200, {"ok": True})
        self.send(404, {"message": "no such control"})


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--forge", required=True, choices=("gitea", "github", "gitlab"))
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--page-max", type=int, default=2)
    ap.add_argument("--repo", action="append", default=[])
    a = ap.parse_args()
    token = os.environ.get("FAKEFORGE_TOKEN")
    if not token:
        sys.exit("fakeforge: FAKEFORGE_TOKEN is not set")

    srv = Server(("127.0.0.1", 0), Handler)
    srv.forge = Forge(a.forge, token, a.page_max, a.repo)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("%d\n" % srv.server_address[1])
    os.replace(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
