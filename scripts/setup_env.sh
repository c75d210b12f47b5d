# Sourced by the other scripts: create .venv (CPU torch pinned) once, then activate it.
# torch==2.13.0 is pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$REPO/.venv/bin/python" ]; then
  python3 -m venv "$REPO/.venv"
fi
if ! "$REPO/.venv/bin/python" -c "import torch, numpy, scipy, sklearn, yaml, tqdm, matplotlib, pytest" 2>/dev/null; then
  "$REPO/.venv/bin/python" -m pip install -q --upgrade pip
  "$REPO/.venv/bin/python" -m pip install -q -r "$REPO/requirements.txt"
fi
# shellcheck disable=SC1091
. "$REPO/.venv/bin/activate"
cd "$REPO"
