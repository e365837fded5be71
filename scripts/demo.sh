#!/usr/bin/env bash
# `make demo`: the lab end to end on one machine, then the offline policy tools.
set -euo pipefail
cd "$(dirname "$0")/.."
fykectl=$PWD/.venv/bin/fykectl
state=${FYKE_LAB_DIR:-/var/lib/fyke/demo-lab}

run() { echo; echo "\$ $*"; "$@"; }

cleanup() { "$fykectl" lab down --state-dir "$state" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup

run "$fykectl" lab up --nodes 1 --state-dir "$state"
run "$fykectl" lab apply -f examples/cluster.yaml --wait --state-dir "$state"
export KUBECONFIG=$("$fykectl" lab kubeconfig --path --state-dir "$state")
run kubectl get nodes -o wide
run kubectl get pods -A -o wide
echo
echo "# Real packets between every pair of pods, through each pod's veth, OVS (br-int,"
echo "# userspace datapath) with SpoofGuard and conntrack. No policy is enforced in the"
echo "# datapath yet, so everything is allowed:"
run "$fykectl" lab probe --port 80/TCP --port 80/UDP --state-dir "$state"
echo
echo "# What examples/policies.yaml means, computed offline (the datapath will enforce it):"
run "$fykectl" policy matrix -f examples/ --port 80/TCP --port 81/TCP
run "$fykectl" policy explain -f examples/ --from z/a --to y/b --port 80/TCP
run "$fykectl" policy explain -f examples/ --from x/a --to z/c --port 80/TCP
run "$fykectl" policy explain -f examples/ --from z/b --to x/a --port 81/TCP
run "$fykectl" lab down --state-dir "$state"
trap - EXIT
