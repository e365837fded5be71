"""fyke-agent: the per-node process (CNI server, IPAM, pod plumbing, and the OVS side)."""
