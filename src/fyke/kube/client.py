"""An async Kubernetes client from a kubeconfig, the environment or in-cluster config."""

from __future__ import annotations

import os

from lightkube import AsyncClient, KubeConfig


def config(kubeconfig: str | None = None) -> KubeConfig:
    """kubeconfig file if given, else $KUBECONFIG / ~/.kube/config, else in-cluster."""
    if kubeconfig:
        cfg = KubeConfig.from_file(kubeconfig)  # type: ignore[no-untyped-call]
    elif os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
        cfg = KubeConfig.from_env()  # type: ignore[no-untyped-call]
    else:
        cfg = KubeConfig.from_service_account()  # type: ignore[no-untyped-call]
    assert isinstance(cfg, KubeConfig)
    return cfg


def async_client(kubeconfig: str | None = None, *, field_manager: str = "fyke") -> AsyncClient:
    return AsyncClient(config=config(kubeconfig), field_manager=field_manager)
