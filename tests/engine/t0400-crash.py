#!/usr/bin/env python3
"""t0400-crash.py - the engine and state checks of t0400-crash.sh.

One process per check (python3 starts slowly and t0400 checks about 50
times).  Talks to the engine's Docker-compatible REST API over
its unix socket, like harness.sh.  Environment:
  SOCK      the engine socket
  PREFIX    the test's --name-prefix
  INSTANCE  the state dir's instance id ("none" before there is one)
  STATE     the state dir
  AGAIN     check: the JSON output of a second `reconcile --once --json`

  wipe                remove every object named PREFIX-... or labelled with
                      INSTANCE (containers, then volumes, then networks)
  remove BOTTLE       remove that bottle's six objects by name
  check BOTTLE...     one line per problem on stdout, exit 1 if any:
    - AGAIN says summary.engine_changes 0;
    - the objects named PREFIX-... or labelled io.bottled.instance=INSTANCE
      are exactly, per bottle, the networks int and egr, the volumes work
      and cfg and the containers proxy and agent, each once, labelled
      managed=true, instance, bottle and role (a duplicate, a leak, an
      unlabelled leftover or a deleted bottle's object is a difference);
    - state.db has no pending intent, one bottles row per BOTTLE and one
      resources row per object above, with its engine id;
    - the state dir holds a CA (ca/BOTTLE) for each BOTTLE and no other;
    - each agent's /etc/bottle (read as an archive: no exec needed) holds
      the bottle's prompt, a gitconfig and the CA certificate of the state
      dir.
"""
import concurrent.futures
import http.client
import io
import json
import os
import socket
import sqlite3
import sys
import tarfile
import urllib.parse

SOCK = os.environ["SOCK"]
PREFIX = os.environ["PREFIX"] + "-"
INSTANCE = os.environ.get("INSTANCE") or "none"
STATE = os.environ["STATE"]
ROLES = (("container", "agent"), ("container", "proxy"), ("network", "egr"),
         ("network", "int"), ("volume", "cfg"), ("volume", "work"))


class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(SOCK)


def req(method, path, ok=(200,)):
    c = Conn("d")
    try:
        c.request(method, "/v1.41" + path)
        r = c.getresponse()
        body = r.read()
    except OSError as e:  # timeouts included
        raise RuntimeError("%s %s: the engine did not answer: %s" % (method, path, e)) from e
    finally:
        c.close()
    if r.status not in ok:
        raise RuntimeError("%s %s: HTTP %d: %s" % (method, path, r.status, body[:300]))
    return body


def inventory():
    """[(kind, name, "kind name managed instance bottle role", engine id)], sorted."""
    rows = []

    def add(kind, name, labels, eid):
        labels = labels or {}
        if name.startswith(PREFIX) or labels.get("io.bottled.instance") == INSTANCE:
            desc = " ".join([kind, name] + [labels.get("io.bottled." + k, "-")
                                            for k in ("managed", "instance", "bottle", "role")])
            rows.append((kind, name, desc, eid))

    for c in json.loads(req("GET", "/containers/json?all=true")):
        for n in c.get("Names") or []:
            add("container", n.lstrip("/"), c.get("Labels"), c["Id"])
    for n in json.loads(req("GET", "/networks")):
        add("network", n["Name"], n.get("Labels"), n["Id"])
    for v in json.loads(req("GET", "/volumes")).get("Volumes") or []:
        add("volume", v["Name"], v.get("Labels"), v["Name"])
    return sorted(rows)


def wipe():
    rows = inventory()
    paths = {"container": "/containers/%s?force=true&v=true", "volume": "/volumes/%s?force=true",
             "network": "/networks/%s"}
    for kind in ("container", "volume", "network"):
        # each kind's removals at once: a forced container removal waits
        # for its process to die
        paths_of_kind = [paths[kind] % urllib.parse.quote(name, safe="")
                         for k, name, _, _ in rows if k == kind]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            for f in [pool.submit(req, "DELETE", p, (200, 204, 404)) for p in paths_of_kind]:
                f.result()
    left = inventory()
    if left:
        sys.exit("left after the wipe: " + "; ".join(r[2] for r in left))


def remove(bottle):
    """Removes one bottle's objects by hand, as bottled would delete them."""
    paths = {"container": "/containers/%s?force=true&v=true", "volume": "/volumes/%s?force=true",
             "network": "/networks/%s"}
    for kind, role in ROLES:
        name = "%s%s-%s" % (PREFIX, bottle, role)
        req("DELETE", paths[kind] % urllib.parse.quote(name, safe=""), (200, 204, 404))


def check(bottles):
    probs = []
    again = os.environ.get("AGAIN")
    if again:
        try:
            with open(again) as f:
                n = json.load(f)["summary"]["engine_changes"]
            if n != 0:
                probs.append("a second reconcile made %s engine change(s)" % n)
        except (OSError, ValueError, KeyError) as e:
            probs.append("a second reconcile's JSON: %s" % e)

    want = sorted("%s %s%s-%s true %s %s %s" % (k, PREFIX, b, r, INSTANCE, b, r)
                  for b in bottles for k, r in ROLES)
    inv = inventory()
    got = [r[2] for r in inv]
    if got != want:
        missing = [x for x in sorted(set(want)) if got.count(x) < want.count(x)]
        extra = [x for x in sorted(set(got)) if got.count(x) > want.count(x)]
        probs.append("engine objects: missing [%s], unexpected or duplicate [%s]" %
                     ("; ".join(missing), "; ".join(extra)))

    try:
        db = sqlite3.connect("file:%s/state.db?mode=ro" % STATE, uri=True)
        pend = db.execute("SELECT action, resource FROM intents WHERE state = 'pending'").fetchall()
        if pend:
            probs.append("%d pending intent(s): %s" % (len(pend), pend))
        rows = [r[0] for r in db.execute("SELECT name FROM bottles ORDER BY name")]
        if rows != sorted(bottles):
            probs.append("bottle rows in state.db: %s, want %s" % (rows, sorted(bottles)))
        # the resources table knows what exists, with the engine ids
        ids = {r[1]: r[3] for r in inv}
        rows = sorted(db.execute("SELECT bottle, role, name, engine_id FROM resources"))
        want_rows = sorted((b, r, "%s%s-%s" % (PREFIX, b, r), ids.get("%s%s-%s" % (PREFIX, b, r)))
                           for b in bottles for _, r in ROLES)
        if rows != want_rows:
            probs.append("resources in state.db: missing or stale %s, unexpected %s" % (
                [x[:3] for x in want_rows if x not in rows], [x[:3] for x in rows if x not in want_rows]))
        db.close()
    except sqlite3.Error as e:
        probs.append("state.db: %s" % e)

    try:
        cas = sorted(os.listdir(os.path.join(STATE, "ca")))
    except OSError as e:
        cas = ["(%s)" % e]
    if cas != sorted(bottles):
        probs.append("bottle CAs in the state dir: %s, want %s" % (cas, sorted(bottles)))

    for b in bottles:
        c = "%s%s-agent" % (PREFIX, b)
        try:
            body = req("GET", "/containers/%s/archive?path=/etc/bottle" % c)
            with tarfile.open(fileobj=io.BytesIO(body)) as t:
                files = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
            with open("%s/ca/%s/cert.pem" % (STATE, b), "rb") as f:
                ca = f.read()
            if files.get("bottle/ca.pem") != ca:
                probs.append("%s: /etc/bottle/ca.pem is not the state dir's CA of %s" % (c, b))
            if ("t0400 bottle %s." % b).encode() not in files.get("bottle/prompt.md", b""):
                probs.append("%s: /etc/bottle/prompt.md is not the bottle's prompt" % c)
            if "bottle/gitconfig" not in files:
                probs.append("%s: no /etc/bottle/gitconfig" % c)
        except (OSError, RuntimeError, tarfile.TarError) as e:
            probs.append("%s: /etc/bottle: %s" % (c, e))

    for p in probs:
        print(p)
    return 1 if probs else 0


if __name__ == "__main__":
    try:
        if len(sys.argv) >= 2 and sys.argv[1] == "wipe":
            wipe()
        elif len(sys.argv) == 3 and sys.argv[1] == "remove":
            remove(sys.argv[2])
        elif len(sys.argv) >= 2 and sys.argv[1] == "check":
            sys.exit(check(sys.argv[2:]))
        else:
            sys.exit("usage: t0400-crash.py wipe | remove BOTTLE | check BOTTLE...")
    except RuntimeError as e:
        print(e)
        sys.exit(1)
