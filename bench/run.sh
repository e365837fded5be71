#!/usr/bin/env bash
# Benchmark fyke against network-config-analyzer (NCA) 2.1.0 on generated clusters.
# NCA lives in its own venv (bench/.venv-nca, gitignored) so its pins never touch fyke's.
# Usage: bash bench/run.sh [--sizes small,large] [--strict] [--keep DIR] [--divergent] ...
# On 2 cores NCA needs about 1 min for "small" and 16 min for "large"; fyke 7 s and 40 s.
set -euo pipefail
cd "$(dirname "$0")"

NCA_VENV=.venv-nca
NCA_VERSION=2.1.0
if ! "$NCA_VENV/bin/nca" --version 2>/dev/null | grep -q "$NCA_VERSION"; then
    rm -rf "$NCA_VENV"
    python3 -m venv "$NCA_VENV"
    "$NCA_VENV/bin/pip" install --quiet "network-config-analyzer==$NCA_VERSION"
fi

# The driver needs only the standard library and PyYAML, which NCA's venv already has.
exec "$NCA_VENV/bin/python" nca_vs_fyke.py "$@"
