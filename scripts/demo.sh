#!/usr/bin/env bash
# `make demo`: a two-node lab end to end on one machine, then the offline policy tools.
# The lab stays up at the end so that you can poke at it; `fykectl lab down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
fykectl=$PWD/.venv/bin/fykectl
state=${FYKE_LAB_DIR:-/var/lib/fyke/demo-lab}

run() { echo; echo "\$ $*"; "$@"; }

cleanup() { "$fykectl" lab down --state-dir "$state" >/dev/null 2>&1 || true; }
fresh() { cleanup; rm -rf "$state"; }  # the demo starts from an empty lab
trap cleanup EXIT
fresh

run "$fykectl" lab up --nodes 2 --encap geneve --state-dir "$state"
run "$fykectl" lab apply -f examples/cluster.yaml --wait --state-dir "$state"
export KUBECONFIG=$("$fykectl" lab kubeconfig --path --state-dir "$state")
run kubectl get nodes -o wide
run kubectl get pods -A -o wide
echo
echo "# The lab scheduler spread the pods over node-1 and node-2. Real packets between every"
echo "# pair, through each pod's veth and its node's OVS (br-int, userspace datapath:"
echo "# SpoofGuard, conntrack, policy conjunctions), across nodes through a Geneve tunnel"
echo "# over the underlay fabric. No policy yet:"
run "$fykectl" lab probe --port 80/TCP --port 81/TCP --port 80/UDP --state-dir "$state"
echo
echo "# Now a tiered policy set: an Antrea ClusterNetworkPolicy rejecting everything to z/c"
echo "# (securityops tier), a Kubernetes NetworkPolicy admitting only namespace x to y's"
echo "# named port serve-80-tcp, an AdminNetworkPolicy denying z -> x on 81/TCP, and two more"
echo "# closing y's port 80 to the cluster except for x, whose traffic they Pass to y's owners."
# --wait: until every node's agent has installed the new policies' flows.
run "$fykectl" lab apply -f examples/policies.yaml --wait --state-dir "$state"
echo
echo "# The controller served each node its share; the nodes that need the Antrea policy"
echo "# report it realized, and the controller writes that onto the policy:"
for _ in $(seq 50); do  # the report reaches the controller just after --wait returns
    [ "$(kubectl get acnp quarantine-z-c -o jsonpath='{.status.phase}')" = Realized ] && break
    sleep 0.2
done
run kubectl get acnp -o custom-columns='NAME:.metadata.name,PHASE:.status.phase,REALIZED:.status.currentNodesRealized,DESIRED:.status.desiredNodesRealized,GENERATION:.status.observedGeneration'
run "$fykectl" lab probe --port 80/TCP --port 81/TCP --port 80/UDP --state-dir "$state"
echo
echo "# The same, computed offline from the manifests alone (what the datapath must match):"
run "$fykectl" policy matrix -f examples/ --port 80/TCP --port 81/TCP --port 80/UDP
echo
echo "# Why a connection is denied, rejected, or allowed after a Pass:"
run "$fykectl" policy explain -f examples/ --from z/a --to y/b --port 80/TCP
run "$fykectl" policy explain -f examples/ --from x/a --to z/c --port 80/TCP
run "$fykectl" policy explain -f examples/ --from x/a --to y/b --port 80/TCP
trap - EXIT
cat <<EOT

# The lab is still up. Poke at it:
#   export KUBECONFIG=$KUBECONFIG
#   kubectl get nodes,pods -A -o wide
#   $fykectl lab probe --state-dir $state
#   $fykectl lab node add --state-dir $state        (node-3 joins; then kubectl apply a pod)
# When done:
#   $fykectl lab down --state-dir $state
EOT
