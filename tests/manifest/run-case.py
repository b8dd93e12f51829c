#!/usr/bin/python3
"""Run one data-driven manifest case against the real bottled binary.

Usage: run-case.py BOTTLED CASE_DIR

A case directory holds:
  bottles/        the manifest directory under test
  setup.sh        optional; run with sh, cwd = the temporary copy of the case,
                  to create what git cannot hold well (symlinks, loops, huge
                  files)
  expected.diag   the expected diagnostics of `bottled validate`, one a line:
                    REL:LINE:COL: SUBSTRING   diagnostic at that position
                    REL: SUBSTRING            whole-file diagnostic
                    REL:?: SUBSTRING          any position in that file (used
                                              only where the spec leaves the
                                              position open)
                    !NOT: TEXT                TEXT must not occur anywhere in
                                              the output (secret masking)
                  REL is relative to bottles/; SUBSTRING (may be empty) must
                  occur, case-insensitively, in "bottle 'x': message
                  (allowed: a, b)". Blank lines and lines starting with '#'
                  are ignored.
  expected/NAME.json
                  the canonical JSON `bottled show NAME` must print, compared
                  as parsed values; each skills[].digest is only checked to be
                  64 hex characters.

The set of reported positions must equal the expected set exactly, and the
exit status must be 1 when diagnostics are expected, 0 otherwise.
"""
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

TIMEOUT = 60
failures = []


def fail(msg):
    failures.append(msg)


def parse_expected(path):
    exp, nots = [], []
    if not os.path.exists(path):
        return exp, nots
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("!NOT: "):
                nots.append(line[len("!NOT: "):])
                continue
            m = re.match(r"^(.+?):(\d+):(\d+):(?: (.*))?$", line)
            if m:
                exp.append({"path": m[1], "pos": (int(m[2]), int(m[3])),
                            "sub": m[4] or "", "src": n})
                continue
            m = re.match(r"^(.+?):\?:(?: (.*))?$", line)
            if m:
                exp.append({"path": m[1], "pos": "any", "sub": m[2] or "",
                            "src": n})
                continue
            m = re.match(r"^(.+?):(?: (.*))?$", line)
            if m:
                exp.append({"path": m[1], "pos": None, "sub": m[2] or "",
                            "src": n})
                continue
            sys.exit(f"{path}:{n}: cannot parse expected line: {line!r}")
    return exp, nots


def run(argv):
    try:
        p = subprocess.run(argv, capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        fail(f"timed out after {TIMEOUT}s: {' '.join(argv)}")
        return None, "", ""
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def rel_path(p, roots):
    for r in roots:
        if p == r:
            return "."
        if p.startswith(r + "/"):
            return p[len(r) + 1:]
    return p


def diag_text(d):
    text = d.get("message") or ""
    if d.get("bottle") is not None:
        text = f"bottle '{d['bottle']}': {text}"
    if d.get("allowed"):
        text += " (allowed: " + ", ".join(str(a) for a in d["allowed"]) + ")"
    return text


def diag_pos(d):
    line, col = d.get("line"), d.get("column")
    if not line:
        return None
    return (int(line), int(col or 0))


def fmt_pos(pos):
    if pos is None:
        return ""
    if pos == "any":
        return ":?"
    return f":{pos[0]}:{pos[1]}"


def check_validate(bottled, bdir, exp, env):
    roots = [bdir, os.path.realpath(bdir)]
    code, out, err = run([bottled, "validate", "--json", "-d", bdir])
    if code is None:
        return out + err
    outputs = out + err
    want_code = 1 if exp else 0
    if code != want_code:
        fail(f"validate --json exited {code}, expected {want_code}\n"
             f"stdout:\n{out}\nstderr:\n{err}")
    try:
        doc = json.loads(out)
        diags = doc["diagnostics"]
    except (ValueError, KeyError, TypeError) as e:
        fail(f"validate --json printed no diagnostics object ({e}):\n{out}")
        return outputs
    actual = []
    for d in diags:
        actual.append({"path": rel_path(d.get("path") or "", roots),
                       "pos": diag_pos(d), "text": diag_text(d),
                       "sev": d.get("severity"), "raw": d})

    def matches(e, a):
        if e["path"] != a["path"]:
            return False
        if e["pos"] != "any" and e["pos"] != a["pos"]:
            return False
        return e["sub"].lower() in a["text"].lower()

    for e in exp:
        if not any(matches(e, a) for a in actual):
            near = [a for a in actual if a["path"] == e["path"]]
            fail(f"missing diagnostic (expected.diag line {e['src']}): "
                 f"{e['path']}{fmt_pos(e['pos'])}: {e['sub']}\n"
                 + "".join(f"    got {a['path']}{fmt_pos(a['pos'])}: "
                           f"{a['text']}\n" for a in near))
    for a in actual:
        ok = any(e["path"] == a["path"] and
                 (e["pos"] == "any" or e["pos"] == a["pos"]) for e in exp)
        if not ok:
            fail(f"unexpected diagnostic: {a['path']}{fmt_pos(a['pos'])}: "
                 f"[{a['sev']}] {a['text']}")
    for a in actual:
        if a["sev"] not in ("error", "warning"):
            fail(f"bad severity {a['sev']!r} in {a['raw']}")

    # The text form must agree with the JSON form: same exit status, one
    # line per diagnostic, starting with path[:line:col]: .
    code2, out2, err2 = run([bottled, "validate", "-d", bdir])
    if code2 is None:
        return outputs
    outputs += out2 + err2
    if code2 != code:
        fail(f"validate exited {code2} but validate --json exited {code}")
    lines = (out2 + err2).splitlines()
    for a in actual:
        d = a["raw"]
        prefix = d.get("path") or ""
        if a["pos"] is not None:
            prefix += f":{a['pos'][0]}:{a['pos'][1]}"
        prefix += ": "
        if not any(l.startswith(prefix) for l in lines):
            fail(f"text output has no line starting with {prefix!r}:\n"
                 f"{out2}{err2}")
    return outputs


def normalise_skills(doc, where):
    skills = doc.get("skills") if isinstance(doc, dict) else None
    if not isinstance(skills, list):
        return
    for s in skills:
        if isinstance(s, dict) and "digest" in s:
            dg = s["digest"]
            if where == "actual" and not (isinstance(dg, str) and
                                          re.fullmatch(r"[0-9a-f]{64}", dg)):
                fail(f"skill {s.get('name')!r}: digest {dg!r} is not 64 "
                     f"lower-case hex characters")
            s["digest"] = "<sha256>"
        elif isinstance(s, dict) and where == "expected":
            s["digest"] = "<sha256>"


def check_show(bottled, bdir, expdir):
    outputs = ""
    if not os.path.isdir(expdir):
        return outputs
    for fn in sorted(os.listdir(expdir)):
        if not fn.endswith(".json"):
            continue
        name = fn[:-len(".json")]
        with open(os.path.join(expdir, fn), encoding="utf-8") as f:
            want = json.load(f)
        code, out, err = run([bottled, "show", "-d", bdir, name])
        if code is None:
            continue
        outputs += out + err
        if code != 0:
            fail(f"show {name} exited {code}\nstdout:\n{out}\nstderr:\n{err}")
            continue
        try:
            got = json.loads(out)
        except ValueError as e:
            fail(f"show {name} printed invalid JSON ({e}):\n{out}")
            continue
        normalise_skills(got, "actual")
        normalise_skills(want, "expected")
        if got != want:
            a = json.dumps(want, indent=2, sort_keys=True).splitlines()
            b = json.dumps(got, indent=2, sort_keys=True).splitlines()
            fail(f"show {name}: canonical JSON differs (- expected, + got):\n"
                 + "\n".join(difflib.unified_diff(a, b, "expected", "got",
                                                  lineterm="")))
    return outputs


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: run-case.py BOTTLED CASE_DIR")
    bottled = os.path.abspath(sys.argv[1])
    case = os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="bottled-case-")
    try:
        work = os.path.join(tmp, "case")
        shutil.copytree(case, work, symlinks=True)
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("BOTTLED_"):
                del env[k]
        env["XDG_STATE_HOME"] = os.path.join(tmp, "state")
        env["BOTTLED_STATE_DIR"] = os.path.join(tmp, "state", "bottled")
        os.environ.clear()
        os.environ.update(env)
        if os.path.exists(os.path.join(work, "setup.sh")):
            p = subprocess.run(["sh", "-e", "setup.sh"], cwd=work)
            if p.returncode != 0:
                sys.exit(f"setup.sh failed with status {p.returncode}")
        bdir = os.path.join(work, "bottles")
        exp, nots = parse_expected(os.path.join(work, "expected.diag"))
        outputs = check_validate(bottled, bdir, exp, env)
        outputs += check_show(bottled, bdir, os.path.join(work, "expected"))
        for t in nots:
            if t in outputs:
                fail(f"output contains text that must be masked: {t[:4]}...")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"FAIL {os.path.basename(case)}")
        for f in failures:
            print("  " + f.replace("\n", "\n  "))
        sys.exit(1)
    print(f"ok {os.path.basename(case)}")


if __name__ == "__main__":
    main()
