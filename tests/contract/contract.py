"""Checks real HTTP responses against `openapi.yaml`.

`Contract.check(response, method, path)` fails unless the response's status
is documented for the operation, its content type is one the description
gives for that status (or it has no body where none is described), every
required header is present, every described header matches its schema, and
the body validates against the described JSON Schema (OpenAPI 3.1 schemas are
JSON Schema 2020-12; formats such as `date-time` and `uri` are checked). The
same response is also given to schemathesis' own response validation, so two
independent readings of the description must agree.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import requests
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:finexer-connect:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class ContractViolation(AssertionError):
    pass


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class Contract:
    def __init__(self, path: Path):
        self.path = path
        self.doc: dict[str, Any] = yaml.safe_load(path.read_text())
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(SPEC_URI, resource)

    # -- the description ----------------------------------------------------

    def resolve(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follows OpenAPI `$ref`s (local ones only) to the object and its pointer."""
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise ContractViolation(f"unsupported or circular $ref {ref!r} at {pointer}")
            seen.add(ref)
            pointer = ref[1:]
            node = self.doc
            for part in pointer.split("/")[1:]:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, pointer

    def operation(self, method: str, path: str) -> tuple[dict[str, Any], str]:
        method = method.lower()
        paths = self.doc.get("paths", {})
        if path not in paths or method not in paths[path]:
            raise ContractViolation(f"{method.upper()} {path} is not described")
        return paths[path][method], f"/paths/{_escape(path)}/{method}"

    def operations(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (method.upper(), path, item[method])
            for path, item in self.doc.get("paths", {}).items()
            for method in HTTP_METHODS
            if method in item
        ]

    def documented_statuses(self, method: str, path: str) -> set[str]:
        op, _ = self.operation(method, path)
        return set(op.get("responses", {}))

    # -- checking responses -------------------------------------------------

    def check(self, response: requests.Response, method: str, path: str) -> dict[str, Any]:
        """Raises ContractViolation unless `response` is one `openapi.yaml` describes.

        Returns the parsed JSON body (or {} for a body that is not JSON).
        """
        where = f"{method.upper()} {path} -> {response.status_code}"
        op, op_pointer = self.operation(method, path)
        responses = op.get("responses", {})
        status = str(response.status_code)
        key = next(
            (k for k in (status, f"{status[0]}XX", f"{status[0]}xx", "default") if k in responses),
            None,
        )
        if key is None:
            raise ContractViolation(
                f"{where}: status not described (described: {sorted(responses)}); body: {response.text[:500]}"
            )
        described, pointer = self.resolve(
            responses[key], f"{op_pointer}/responses/{_escape(key)}"
        )

        self._check_headers(where, response, described, pointer)
        return self._check_body(where, response, described, pointer)

    def _check_headers(self, where, response, described, pointer) -> None:
        for name, header in (described.get("headers") or {}).items():
            if name.lower() == "content-type":
                continue
            header, header_pointer = self.resolve(header, f"{pointer}/headers/{_escape(name)}")
            value = response.headers.get(name)
            if value is None:
                if header.get("required"):
                    raise ContractViolation(f"{where}: required header {name} is missing")
                continue
            if "schema" in header:
                self._validate(
                    where,
                    value,
                    f"{header_pointer}/schema",
                    f"header {name}",
                )

    def _check_body(self, where, response, described, pointer) -> dict[str, Any]:
        content = described.get("content") or {}
        if not content:
            if response.content:
                raise ContractViolation(
                    f"{where}: no body is described, got {len(response.content)} bytes: {response.text[:200]}"
                )
            return {}
        raw_type = response.headers.get("content-type")
        if raw_type is None:
            raise ContractViolation(f"{where}: no content-type; described: {sorted(content)}")
        media = raw_type.split(";")[0].strip().lower()
        if media not in content:
            raise ContractViolation(
                f"{where}: content-type {raw_type!r} is not described (described: {sorted(content)})"
            )
        media_pointer = f"{pointer}/content/{_escape(media)}"
        if media == "application/json" or media.endswith("+json"):
            try:
                body = response.json()
            except ValueError as e:
                raise ContractViolation(f"{where}: body is not JSON ({e}): {response.text[:200]}") from e
        else:
            body = response.text
        if "schema" in content[media]:
            self._validate(where, body, f"{media_pointer}/schema", "body")
        return body if isinstance(body, dict) else {}

    def _validate(self, where: str, instance: Any, pointer: str, what: str) -> None:
        validator = Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{pointer}"},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            detail = "\n".join(
                f"  - at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in errors[:10]
            )
            shown = json.dumps(instance)[:800] if not isinstance(instance, str) else instance[:300]
            raise ContractViolation(f"{where}: {what} breaks the description:\n{detail}\n{what}: {shown}")

    # -- schemathesis' reading of the same description -----------------------

    @cached_property
    def schemathesis_schema(self):
        import schemathesis

        return schemathesis.openapi.from_path(str(self.path))

    def schemathesis_check(self, response: requests.Response, method: str, path: str) -> None:
        operation = self.schemathesis_schema[path][method.upper()]
        try:
            operation.validate_response(response)
        except Exception as e:  # schemathesis raises a FailureGroup
            raise ContractViolation(f"{method.upper()} {path}: schemathesis: {e}") from e
