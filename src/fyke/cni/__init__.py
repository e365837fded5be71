"""The `fyke-cni` shim: standard library only, so it starts fast on every sandbox event."""
