#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (as root) or an existing one:
# system packages, then .venv with the pinned dependencies. Cheap when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-pip iproute2 ethtool nftables openvswitch-switch tcpdump iperf3
              containernetworking-plugins make git)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages ${missing[*]} and not root" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The lab starts its own OVS daemons per node; the system-wide ones are not needed.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now openvswitch-switch >/dev/null 2>&1 || true
    fi
fi

PY=${PYTHON:-python3}
stamp=.venv/.fyke-installed
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip==24.3.1
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
# Byte-compile fyke now: with PYTHONDONTWRITEBYTECODE set (as on these machines) Python
# would otherwise recompile every module on every fykectl run.
.venv/bin/python -m compileall -q src >/dev/null
