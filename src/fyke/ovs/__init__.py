"""Open vSwitch adapters: daemons per node, OVSDB, the OpenFlow 1.5 channel, the reconciler."""
