#!/usr/bin/env bash
# Set up distilnas in ./.venv on a fresh machine (idempotent: a second run only checks).
#  1. Fashion-MNIST from the Debian package dataset-fashion-mnist, where apt is available;
#  2. a virtual environment with the CPU build of PyTorch 2.13.0 (an unpinned torch would pull
#     several GB of CUDA wheels; on a GPU machine install the CUDA build you need instead);
#  3. distilnas itself (editable) with its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -q dataset-fashion-mnist >/dev/null \
    || { $sudo_cmd apt-get update -q >/dev/null && $sudo_cmd apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
    || echo "install.sh: could not install dataset-fashion-mnist; set data.root=/path/to/fashion-mnist" >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q torch==2.13.0
fi
.venv/bin/pip install -q -e '.[test,plot]'
