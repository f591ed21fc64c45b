#!/usr/bin/env bash
# Print the path of a working `uv`, installing it with pip into .tools/ when none is found.
# Needs only Python >= 3.11. Used by the Makefile; safe to run again (it is a no-op then).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
local_uv="$root/.tools/uv/bin/uv"

if command -v uv >/dev/null 2>&1; then
  command -v uv
  exit 0
fi
if [ -x "$local_uv" ]; then
  echo "$local_uv"
  exit 0
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: $python must be Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
echo "bootstrap: uv not found; installing it with pip into .tools/uv" >&2
# --target keeps the install inside the repository (no global site-packages, no PEP 668 issue).
"$python" -m pip install --quiet --disable-pip-version-check --target "$root/.tools/uv" uv >&2 \
  || "$python" -m pip install --quiet --disable-pip-version-check --break-system-packages \
       --target "$root/.tools/uv" uv >&2
if [ ! -x "$local_uv" ]; then
  echo "bootstrap: pip installed uv but $local_uv is missing" >&2
  exit 1
fi
echo "$local_uv"
