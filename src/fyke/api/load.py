"""Reading manifests: multi-document YAML or JSON, `kind: List`, every supported kind."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fyke.api import adminpolicy, antrea, fastyaml
from fyke.api.adminpolicy import AdminPolicy
from fyke.api.antrea import AntreaGroup, AntreaPolicy, Tier
from fyke.api.core import (
    Namespace,
    Node,
    Pod,
    Service,
    parse_namespace,
    parse_node,
    parse_pod,
    parse_service,
)
from fyke.api.errors import ValidationError
from fyke.api.netpol import NetworkPolicy, parse_network_policy


@dataclass(slots=True, kw_only=True)
class Inventory:
    """Everything read from a set of manifests, in input order."""

    namespaces: list[Namespace] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    network_policies: list[NetworkPolicy] = field(default_factory=list)
    admin_policies: list[AdminPolicy] = field(default_factory=list)
    antrea_policies: list[AntreaPolicy] = field(default_factory=list)
    tiers: list[Tier] = field(default_factory=list)
    groups: list[AntreaGroup] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Objects skipped as invalid: (apiVersion, kind, namespace, name, what is wrong).
    invalid: list[tuple[str, str, str, str, str]] = field(default_factory=list)


def _add(inv: Inventory, doc: Mapping[str, Any]) -> None:
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    group, _, version = str(api_version).rpartition("/")
    handlers: dict[tuple[str, str], Callable[[], None]] = {
        ("", "Namespace"): lambda: inv.namespaces.append(parse_namespace(doc)),
        ("", "Pod"): lambda: inv.pods.append(parse_pod(doc)),
        ("", "Node"): lambda: inv.nodes.append(parse_node(doc)),
        ("", "Service"): lambda: inv.services.append(parse_service(doc)),
        ("networking.k8s.io", "NetworkPolicy"): lambda: inv.network_policies.append(
            parse_network_policy(doc)
        ),
        (adminpolicy.GROUP, adminpolicy.ANP): lambda: inv.admin_policies.append(
            adminpolicy.parse_admin_policy(doc, adminpolicy.ANP, version)
        ),
        (adminpolicy.GROUP, adminpolicy.BANP): lambda: inv.admin_policies.append(
            adminpolicy.parse_admin_policy(doc, adminpolicy.BANP, version)
        ),
        (adminpolicy.GROUP, adminpolicy.CNP): lambda: inv.admin_policies.append(
            adminpolicy.parse_admin_policy(doc, adminpolicy.CNP, version)
        ),
        (antrea.GROUP, antrea.ACNP): lambda: inv.antrea_policies.append(
            antrea.parse_policy(doc, antrea.ACNP)
        ),
        (antrea.GROUP, antrea.ANNP): lambda: inv.antrea_policies.append(
            antrea.parse_policy(doc, antrea.ANNP)
        ),
        (antrea.GROUP, antrea.TIER): lambda: inv.tiers.append(antrea.parse_tier(doc)),
        (antrea.GROUP, antrea.CLUSTER_GROUP): lambda: inv.groups.append(
            antrea.parse_group(doc, antrea.CLUSTER_GROUP)
        ),
        (antrea.GROUP, antrea.NS_GROUP): lambda: inv.groups.append(
            antrea.parse_group(doc, antrea.NS_GROUP)
        ),
    }
    handler = handlers.get((group, str(kind)))
    if handler is None:
        meta = doc.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        inv.warnings.append(f"skipping unsupported kind {api_version}/{kind} {name or ''}".strip())
        return
    if group == adminpolicy.GROUP and version not in ("v1alpha1", "v1alpha2"):
        inv.warnings.append(f"reading {api_version} {kind} as v1alpha1/v1alpha2")
    handler()


MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def read_sources(names: Iterable[str]) -> list[tuple[str, str]]:
    """(source, text) for each name: '-' is stdin, a directory gives its .yaml, .yml and
    .json files in sorted order. A file that cannot be read raises RuntimeError naming it."""
    texts: list[tuple[str, str]] = []
    for name in names:
        if name == "-":
            texts.append(("<stdin>", sys.stdin.read()))
            continue
        path = Path(name)
        try:
            files = (
                sorted(f for f in path.iterdir() if f.suffix in MANIFEST_SUFFIXES)
                if path.is_dir()
                else [path]
            )
            for f in files:
                texts.append((str(f), _read_text(f)))
        except OSError as err:
            where = err.filename or name
            raise RuntimeError(f"{where}: cannot read: {err.strerror or err}") from None
    return texts


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise RuntimeError(f"{path}: cannot read: not UTF-8 text") from None


def _json_stream(text: str) -> list[Any]:
    """One JSON value, or several concatenated (`{...}\n{...}`), each a document."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    end = len(text)
    pos = 0
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos == end:
            return values
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)


def documents(text: str, source: str) -> Iterable[Mapping[str, Any]]:
    """Every object in a file, with `kind: List` flattened."""
    try:
        if text.lstrip().startswith(("{", "[")):
            loaded: list[Any] = _json_stream(text)
        else:
            loaded = list(fastyaml.load_all(text))
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ValidationError(None, "", f"{source}: cannot parse: {e}") from None
    stack = list(reversed(loaded))
    while stack:
        doc = stack.pop()
        if doc is None:
            continue
        if isinstance(doc, list):
            stack.extend(reversed(doc))
            continue
        if not isinstance(doc, Mapping):
            raise ValidationError(None, "", f"{source}: a document is not an object: {doc!r}")
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            stack.extend(reversed(doc["items"]))
            continue
        if not doc.get("apiVersion") or not doc.get("kind"):
            raise ValidationError(
                None, "", f"{source}: an object without apiVersion or kind: {_short(doc)}"
            )
        yield doc


def load_texts(texts: Iterable[tuple[str, str]]) -> Inventory:
    """Parse (source, text) pairs; the first invalid object raises ValidationError."""
    inv = Inventory()
    for source, text in texts:
        for doc in documents(text, source):
            _add(inv, doc)
    return inv


def _short(doc: Mapping[str, Any]) -> str:
    s = json.dumps(doc, default=str)
    return s if len(s) < 80 else s[:77] + "..."


def load_objects(docs: Iterable[Mapping[str, Any]]) -> Inventory:
    """Objects as an API server returns them; an invalid one is skipped with a warning
    (the server validated them already; this keeps one bad object from stopping all)."""
    inv = Inventory()
    for doc in docs:
        try:
            _add(inv, doc)
        except ValidationError as e:
            inv.warnings.append(f"skipping invalid object: {e}")
            meta = doc.get("metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            inv.invalid.append(
                (
                    str(doc.get("apiVersion", "")),
                    str(doc.get("kind", "")),
                    str(meta.get("namespace") or ""),
                    str(meta.get("name") or ""),
                    str(e),
                )
            )
    return inv
