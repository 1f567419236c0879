#!/usr/bin/env bash
# The engine's GPU check (see scripts/gpu_check.py): correctness tests, `bench engine` on Llama-3.1-8B shapes,
# the decode step's achieved HBM bandwidth against the GPU's peak, and a live smoke run of vLLM, Sarathi and
# Ascendra; a CPU fallback (tiny shapes) runs where CUDA is absent. Writes summary.json + summary.md to --out.
# Hard cap of 8 minutes; the script budgets itself below that and writes its summary after every stage.
# PYTHON: the interpreter to use (default: the active virtual environment's, else ./.venv's, else `python`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${VIRTUAL_ENV:-}" && -f .venv/bin/activate ]]; then
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
unset TRITON_INTERPRET
exec timeout --kill-after=10 480 "${PYTHON:-python}" scripts/gpu_check.py "$@"
