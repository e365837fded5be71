#!/usr/bin/env bash
# `make demo`: until the lab lands, the offline policy tools on the shipped example.
set -euo pipefail
cd "$(dirname "$0")/.."
fykectl=.venv/bin/fykectl
echo "== fykectl policy matrix -f examples/ --port 80/TCP --port 81/TCP"
$fykectl policy matrix -f examples/ --port 80/TCP --port 81/TCP
echo
echo "== fykectl policy explain -f examples/ --from z/a --to y/b --port 80/TCP"
$fykectl policy explain -f examples/ --from z/a --to y/b --port 80/TCP
echo
echo "== fykectl policy explain -f examples/ --from x/a --to z/c --port 80/TCP"
$fykectl policy explain -f examples/ --from x/a --to z/c --port 80/TCP
echo
echo "== fykectl policy explain -f examples/ --from z/b --to x/a --port 81/TCP"
$fykectl policy explain -f examples/ --from z/b --to x/a --port 81/TCP
