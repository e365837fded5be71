#!/usr/bin/env bash
# `make demo`: the lab end to end on one machine, then the offline policy tools.
set -euo pipefail
cd "$(dirname "$0")/.."
fykectl=$PWD/.venv/bin/fykectl
state=${FYKE_LAB_DIR:-/var/lib/fyke/demo-lab}

run() { echo; echo "\$ $*"; "$@"; }

cleanup() { "$fykectl" lab down --state-dir "$state" >/dev/null 2>&1 || true; }
fresh() { cleanup; rm -rf "$state"; }  # the demo starts from an empty lab
trap cleanup EXIT
fresh

run "$fykectl" lab up --nodes 1 --state-dir "$state"
run "$fykectl" lab apply -f examples/cluster.yaml --wait --state-dir "$state"
export KUBECONFIG=$("$fykectl" lab kubeconfig --path --state-dir "$state")
run kubectl get nodes -o wide
run kubectl get pods -A -o wide
echo
echo "# Real packets between every pair of pods, through each pod's veth and OVS (br-int,"
echo "# userspace datapath: SpoofGuard, conntrack, policy conjunctions). No policy yet:"
run "$fykectl" lab probe --port 80/TCP --port 81/TCP --port 80/UDP --state-dir "$state"
echo
echo "# Now a tiered policy set: an Antrea ClusterNetworkPolicy rejecting everything to z/c"
echo "# (securityops tier), a Kubernetes NetworkPolicy admitting only namespace x to y's"
echo "# named port serve-80-tcp, and an AdminNetworkPolicy denying z -> x on 81/TCP."
run "$fykectl" lab apply -f examples/policies.yaml --state-dir "$state"
sleep 2
run "$fykectl" lab probe --port 80/TCP --port 81/TCP --port 80/UDP --state-dir "$state"
echo
echo "# The same, computed offline from the manifests alone (what the datapath must match):"
run "$fykectl" policy matrix -f examples/ --port 80/TCP --port 81/TCP --port 80/UDP
echo
echo "# Why a connection is denied:"
run "$fykectl" policy explain -f examples/ --from z/a --to y/b --port 80/TCP
run "$fykectl" policy explain -f examples/ --from x/a --to z/c --port 80/TCP
run "$fykectl" policy explain -f examples/ --from z/b --to x/a --port 81/TCP
echo
echo "# Poke at it yourself: fykectl lab up; export KUBECONFIG=\$(fykectl lab kubeconfig --path);"
echo "# kubectl get pods -A -o wide; fykectl lab probe; fykectl lab down"
run "$fykectl" lab down --state-dir "$state"
trap - EXIT
