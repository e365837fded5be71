"""What the API server does to objects: create, update, patch, apply, delete, with the
metadata conventions (uid, creationTimestamp, resourceVersion, generation) and
validation by the api package."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import secrets
import string
import uuid
from typing import Any

from fyke.api.core import NAMESPACE_NAME_LABEL
from fyke.api.errors import ValidationError
from fyke.lab.apiserver import patches
from fyke.lab.apiserver.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
)
from fyke.lab.apiserver.registry import Registry, Resource
from fyke.lab.apiserver.store import Store

Obj = dict[str, Any]
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SYSTEM_FIELDS = ("uid", "creationTimestamp", "resourceVersion", "generation", "managedFields")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Objects:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    # --- helpers ---------------------------------------------------------------------

    def _check_body(self, res: Resource, body: Any, namespace: str) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, "", res.kind) or obj.get("apiVersion") not in (
            None,
            "",
            res.api_version,
        ):
            raise bad_request(
                f"the body is {obj.get('apiVersion')}/{obj.get('kind')}, not "
                f"{res.api_version}/{res.kind} as the URL says"
            )
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if res.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    f"the namespace of the object ({meta['namespace']}) does not match the "
                    f"namespace on the request ({namespace})"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _validate(self, res: Resource, obj: Obj) -> None:
        meta = obj["metadata"]
        name = meta.get("name", "")
        pattern = _LABEL if res.kind == "Namespace" else _DNS1123
        if not name:
            raise invalid(
                res.kind,
                res.group,
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or " "generateName is required",
                        "field": "metadata.name",
                    }
                ],
            )
        if len(name) > 253 or not pattern.match(name):
            raise invalid(
                res.kind,
                res.group,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f'Invalid value: "{name}": a lowercase RFC 1123 name must '
                        "consist of lower case alphanumeric characters, '-' or '.'",
                    }
                ],
            )
        if res.validate is None:
            return
        try:
            res.validate(obj)
        except ValidationError as e:
            raise invalid(
                res.kind,
                res.group,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": e.path,
                        "message": e.message,
                    }
                ],
            ) from None

    def _namespace_exists(self, res: Resource, namespace: str) -> None:
        if not res.namespaced:
            return
        ns = self.store.get("", "namespaces", "", namespace)
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if ns.get("status", {}).get("phase") == "Terminating":
            raise ApiError(
                403,
                "Forbidden",
                f"{res.plural} \"{ns['metadata']['name']}\" is "
                f"forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )

    def get(self, res: Resource, namespace: str, name: str) -> Obj:
        obj = self.store.get(res.group, res.plural, namespace if res.namespaced else "", name)
        if obj is None:
            raise not_found(res.group, res.plural, name)
        return obj

    # --- writes ----------------------------------------------------------------------

    def create(
        self,
        res: Resource,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        manager: str = "",
        applied: Obj | None = None,
    ) -> Obj:
        obj = self._check_body(res, body, namespace)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(
                secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5)
            )
            meta["name"] = f"{meta['generateName']}{suffix}"
        for f in SYSTEM_FIELDS:
            meta.pop(f, None)
        if res.status and res.kind != "Namespace":
            obj.pop("status", None)  # status is written through the status subresource
        if res.kind == "Namespace":
            meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = meta.get("name", "")
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        self._validate(res, obj)
        self._namespace_exists(res, namespace)
        key_ns = namespace if res.namespaced else ""
        if self.store.get(res.group, res.plural, key_ns, meta["name"]) is not None:
            raise already_exists(res.group, res.plural, meta["name"])
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["resourceVersion"] = str(self.store.next_rv())
        if "spec" in obj or res.group:
            meta["generation"] = 1
        if manager:
            meta["managedFields"] = [_managed(manager, "Update", res)]
        if dry_run:
            return obj
        memory = (manager, applied) if applied is not None else None
        return self.store.put(res.group, res.plural, obj, "ADDED", memory)

    def update(
        self,
        res: Resource,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        old = self.get(res, namespace, name)
        obj = self._check_body(res, body, namespace)
        meta = obj["metadata"]
        if meta.get("name") not in (None, "", name):
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the "
                f"name on the URL ({name})"
            )
        meta["name"] = name
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(res.group, res.plural, name)
        return self._replace(res, old, obj, subresource=subresource, dry_run=dry_run)

    def _replace(
        self,
        res: Resource,
        old: Obj,
        obj: Obj,
        *,
        subresource: str,
        dry_run: bool,
        applied: tuple[str, Obj] | None = None,
    ) -> Obj:
        meta = obj["metadata"]
        old_meta = old["metadata"]
        if subresource == "status":
            status = obj.get("status")
            obj = copy.deepcopy(old)
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
            meta = obj["metadata"]
        elif res.status:
            if "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
            else:
                obj.pop("status", None)
        for f in ("uid", "creationTimestamp"):
            meta[f] = old_meta[f]
        if res.kind == "Namespace":
            meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = meta["name"]
        generation = old_meta.get("generation")
        if generation is not None:
            changed = json.dumps(obj.get("spec"), sort_keys=True) != json.dumps(
                old.get("spec"), sort_keys=True
            )
            meta["generation"] = generation + 1 if changed else generation
        if "managedFields" in old_meta and "managedFields" not in meta:
            meta["managedFields"] = old_meta["managedFields"]
        self._validate(res, obj)
        if _same(old, obj) and applied is None:
            return old  # a no-op update keeps the resourceVersion, as the API server does
        meta["resourceVersion"] = str(self.store.next_rv())
        if dry_run:
            return obj
        return self.store.put(res.group, res.plural, obj, "MODIFIED", applied)

    def patch(
        self,
        res: Resource,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        *,
        subresource: str = "",
        dry_run: bool = False,
        manager: str = "",
        force: bool = False,
    ) -> Obj:
        ctype = content_type.split(";")[0].strip()
        if ctype == "application/apply-patch+yaml":
            return self.apply(
                res,
                namespace,
                name,
                body,
                manager=manager or "unknown",
                subresource=subresource,
                dry_run=dry_run,
            )
        try:
            patch = json.loads(body or b"null")
        except json.JSONDecodeError as e:
            raise bad_request(f"the patch is not JSON: {e}") from None
        old = self.get(res, namespace, name)
        if ctype == "application/merge-patch+json":
            new = patches.merge_patch(old, patch)
        elif ctype == "application/strategic-merge-patch+json":
            if not res.group == "" and res.group not in ("discovery.k8s.io", "networking.k8s.io"):
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"strategic merge patch is not supported for {res.kind}; use "
                    "a JSON merge patch",
                )
            new = patches.strategic_merge_patch(old, patch, res.kind)
        elif ctype == "application/json-patch+json":
            new = patches.json_patch(old, patch)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {ctype}",
            )
        obj = self._check_body(res, new, namespace)
        rv = obj["metadata"].get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(res.group, res.plural, name)
        obj["metadata"]["name"] = name
        return self._replace(res, old, obj, subresource=subresource, dry_run=dry_run)

    def apply(
        self,
        res: Resource,
        namespace: str,
        name: str,
        body: bytes,
        *,
        manager: str,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        import yaml

        try:
            applied = yaml.safe_load(body or b"{}")
        except yaml.YAMLError as e:
            raise bad_request(f"the applied configuration is not YAML or JSON: {e}") from None
        applied = self._check_body(res, applied, namespace)
        applied_meta = applied["metadata"]
        if applied_meta.get("name") not in (None, "", name):
            raise bad_request("the name in the body does not match the URL")
        applied_meta["name"] = name
        key_ns = namespace if res.namespaced else ""
        old = self.store.get(res.group, res.plural, key_ns, name)
        memory = copy.deepcopy(applied)
        if old is None:
            return self.create(
                res, namespace, applied, dry_run=dry_run, manager=manager, applied=memory
            )
        previous = self.store.applied(res.group, res.plural, key_ns, name, manager)
        merged = patches.apply(old, applied, previous, res.kind)
        obj = self._check_body(res, merged, namespace)
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self._replace(
            res, old, obj, subresource=subresource, dry_run=dry_run, applied=(manager, memory)
        )

    def delete(
        self,
        res: Resource,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        precondition_rv: str = "",
    ) -> Obj:
        obj = self.get(res, namespace, name)
        if precondition_rv and precondition_rv != obj["metadata"]["resourceVersion"]:
            raise conflict(res.group, res.plural, name)
        if dry_run:
            return obj
        if res.kind == "Namespace":
            # Like the API server: the namespace turns Terminating now and goes, with
            # what it holds, when finalize_namespace runs (the server schedules it).
            if obj.get("status", {}).get("phase") == "Terminating":
                return obj
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = now()
            obj["status"] = {"phase": "Terminating"}
            obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
            return self.store.put(res.group, res.plural, obj, "MODIFIED")
        return self.store.remove(res.group, res.plural, obj)

    def finalize_namespace(self, name: str) -> None:
        obj = self.store.get("", "namespaces", "", name)
        if obj is None or obj.get("status", {}).get("phase") != "Terminating":
            return
        for group, plural, child in self.store.in_namespace(name):
            held = self.store.get(group, plural, name, child)
            if held is not None:
                self.store.remove(group, plural, held)
        self.store.remove("", "namespaces", obj)


def _same(a: Obj, b: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        o = {
            **o,
            "metadata": {
                k: v
                for k, v in o["metadata"].items()
                if k not in ("resourceVersion", "managedFields")
            },
        }
        return o

    return json.dumps(strip(a), sort_keys=True) == json.dumps(strip(b), sort_keys=True)


def _managed(manager: str, operation: str, res: Resource) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": res.api_version,
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    }
