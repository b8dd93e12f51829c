#!/usr/bin/env bash
# scripts/check-format.sh - fail if any C source git knows about (tracked, or
# untracked and not ignored) differs from .clang-format. Fix with:
#   git ls-files '*.c' '*.h' | xargs clang-format -i
set -euo pipefail
LOG_TAG=check-format
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

command -v clang-format >/dev/null || die "clang-format not installed (bash scripts/setup.sh)"
mapfile -d '' files < <(source_files '*.c' '*.h')
if [ "${#files[@]}" -eq 0 ]; then
    log "no C sources yet"
    exit 0
fi
if clang-format --dry-run --Werror "${files[@]}"; then
    log "${#files[@]} file(s) formatted correctly"
else
    die "formatting differs (see above); run clang-format -i on those files"
fi
