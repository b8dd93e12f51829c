#!/usr/bin/python3
"""Check schemas/manifest.schema.json against manifests.

Usage: check-schema.py SCHEMA EXAMPLES_DIR BAD_DIR

Every manifest under EXAMPLES_DIR (walked with the scanner's ignore rules:
hidden names, the top-level skills/ directory, README.md, files not ending in
.md) must validate; every BAD_DIR/*.md must not. Front matter is loaded with
PyYAML's safe_load, which is YAML 1.1: examples quote values whose type would
differ under YAML 1.2 (yes/no/on/off, octal-looking numbers).
"""
import json
import os
import sys

import jsonschema
import yaml


def front_matter(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().replace("\r\n", "\n").split("\n")
    if not lines or lines[0] != "---":
        raise ValueError("no front matter")
    for i in range(1, len(lines)):
        if lines[i] == "---":
            doc = yaml.safe_load("\n".join(lines[1:i]))
            return {} if doc is None else doc
    raise ValueError("unterminated front matter")


def manifests(root):
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (rel == "." and d == "skills"))
        for fn in sorted(filenames):
            if fn.startswith(".") or not fn.endswith(".md") or fn == "README.md":
                continue
            yield os.path.join(dirpath, fn)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: check-schema.py SCHEMA EXAMPLES_DIR BAD_DIR")
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    failed = 0

    good = list(manifests(sys.argv[2]))
    if not good:
        print(f"FAIL no manifests found under {sys.argv[2]}")
        failed += 1
    for path in good:
        try:
            doc = front_matter(path)
        except (ValueError, yaml.YAMLError) as e:
            print(f"FAIL {path}: {e}")
            failed += 1
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            failed += 1
            print(f"FAIL {path}: example does not validate")
            for e in errors:
                where = "/".join(str(p) for p in e.absolute_path) or "(top)"
                print(f"    {where}: {e.message}")
        else:
            print(f"ok   {path}")

    bad = sorted(os.path.join(sys.argv[3], f) for f in os.listdir(sys.argv[3])
                 if f.endswith(".md"))
    if not bad:
        print(f"FAIL no bad cases found under {sys.argv[3]}")
        failed += 1
    for path in bad:
        try:
            doc = front_matter(path)
        except (ValueError, yaml.YAMLError) as e:
            print(f"FAIL {path}: bad case must be valid YAML ({e})")
            failed += 1
            continue
        errors = list(validator.iter_errors(doc))
        if not errors:
            failed += 1
            print(f"FAIL {path}: accepted, but must be rejected")
        else:
            best = jsonschema.exceptions.best_match(errors)
            where = "/".join(str(p) for p in best.absolute_path) or "(top)"
            print(f"ok   {path}: rejected at {where}: {best.message[:100]}")

    if failed:
        print(f"{failed} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
