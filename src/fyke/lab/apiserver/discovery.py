"""/version, discovery documents and a small OpenAPI v3 index."""

from __future__ import annotations

from typing import Any

from fyke.lab.apiserver.registry import Registry, Resource

VERSION = {
    "major": "1",
    "minor": "32",  # the kubectl dispatcher picks kubectl.1.<minor> by this
    "gitVersion": "v1.32.0-fyke-lab",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "n/a",
    "compiler": "python",
    "platform": "linux/amd64",
}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    entries: list[dict[str, Any]] = []
    for r in resources:
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        if r.status:
            entries.append(
                {
                    "name": f"{r.plural}/status",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def _group_list(registry: Registry) -> dict[str, Any]:
    groups = []
    for group, versions in registry.group_versions().items():
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[-1]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _openapi_index(registry: Registry) -> dict[str, Any]:
    paths = {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1"}}
    for group, versions in registry.group_versions().items():
        for v in versions:
            paths[f"apis/{group}/{v}"] = {"serverRelativeURL": f"/openapi/v3/apis/{group}/{v}"}
    return {"paths": paths}


def _openapi_doc(resources: list[Resource]) -> dict[str, Any]:
    """Enough OpenAPI for kubectl: every operation takes fieldValidation, so kubectl asks
    the server to validate (it does, with field paths) instead of validating itself."""
    params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for r in resources:
        prefix = f"/apis/{r.group}/{r.version}" if r.group else "/api/v1"
        base = (
            f"{prefix}/namespaces/{{namespace}}/{r.plural}"
            if r.namespaced
            else (f"{prefix}/{r.plural}")
        )
        gvk = [{"group": r.group, "version": r.version, "kind": r.kind}]
        op = {"parameters": params, "x-kubernetes-group-version-kind": gvk[0]}
        paths[base] = {"post": op, "get": {"x-kubernetes-group-version-kind": gvk[0]}}
        paths[f"{base}/{{name}}"] = {
            "put": op,
            "patch": op,
            "get": {"x-kubernetes-group-version-kind": gvk[0]},
        }
        name = f"fyke.{r.group or 'core'}.{r.version}.{r.kind}"
        schemas[name] = {
            "type": "object",
            "x-kubernetes-group-version-kind": gvk,
            "x-kubernetes-preserve-unknown-fields": True,
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "fyke lab", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def document(registry: Registry, parts: list[str]) -> dict[str, Any] | None:
    if parts == ["version"]:
        return VERSION
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }
    if parts == ["apis"]:
        return _group_list(registry)
    if parts == ["api", "v1"]:
        return _resource_list(registry, "", "v1")
    if len(parts) == 3 and parts[0] == "apis":
        return _resource_list(registry, parts[1], parts[2])
    if len(parts) == 2 and parts[0] == "apis":
        for g in _group_list(registry)["groups"]:
            if g["name"] == parts[1]:
                return {"kind": "APIGroup", "apiVersion": "v1", **g}
        return None
    if parts == ["openapi", "v3"]:
        return _openapi_index(registry)
    if parts[:2] == ["openapi", "v3"]:
        rest = parts[2:]
        if rest == ["api", "v1"]:
            return _openapi_doc(registry.in_group_version("", "v1"))
        if len(rest) == 3 and rest[0] == "apis":
            found = registry.in_group_version(rest[1], rest[2])
            return _openapi_doc(found) if found else None
    return None
