#!/usr/bin/env bash
# Install segprune into ./.venv: system packages the tests and demo use, torch, then the project.
# Usage: scripts/install.sh [extras]   (extras default: demo; the tests use "test")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-demo}"

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # espeak-ng + sox: offline speech for tests and the WER eval; prometheus: the metrics test;
  # docker-compose: validates docker-compose.yml offline (no Docker engine needed for `config`).
  apt-get install -y -qq --no-install-recommends espeak-ng sox prometheus docker-compose >/dev/null
fi

[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# Torch first: a CPU wheel where there is no GPU (a plain "torch" requirement may pull a multi-GB CUDA
# build). On a GPU machine, install the CUDA build of your choice before running this script.
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q "torch>=2.4,<3"
  else
    python -m pip install -q torch==2.13.0
  fi
fi
python -m pip install -q -e ".[${extras}]"
echo "segprune installed in $(pwd)/.venv (extras: ${extras})"
