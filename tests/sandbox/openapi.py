"""Validate JSON bodies against response schemas of the vendors' published OpenAPI files.

The files live outside the repository (`VENDOR_SPECS_DIR`, default `../shared/vendor-specs`
next to the repository root); tests skip with a reason when they are absent. OpenAPI 3.0
schemas become JSON Schema (draft 7) by turning `nullable: true` into an explicit null
alternative; `$ref`s resolve against the converted document's `components`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft7Validator

from tests.specs import specs_dir

__all__ = ["specs_dir"]


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items() if k not in ("example", "nullable")}
    if not node.get("nullable"):
        return out
    if "type" in out and "$ref" not in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [out, {"type": "null"}]}


@cache
def _document(relative: str) -> dict[str, Any]:
    with (specs_dir() / relative).open(encoding="utf-8") as handle:
        spec = json.load(handle)
    return {"components": _convert(spec.get("components", {})), "paths": spec["paths"]}


def response_validator(
    relative: str, path: str, method: str = "get", status: str = "200"
) -> Draft7Validator:
    """A validator for the JSON response `status` of `method path` in the spec file `relative`."""
    doc = _document(relative)
    content = doc["paths"][path][method]["responses"][status]["content"]
    schema = _convert(content["application/json"]["schema"])
    return Draft7Validator({**schema, "components": doc["components"]})


def assert_valid(validator: Draft7Validator, body: Any) -> None:
    """Fail with every schema violation listed, each with its JSON path."""
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    listed = "\n".join(f"{e.json_path}: {e.message[:300]}" for e in errors[:20])
    assert not errors, f"{len(errors)} schema violations:\n{listed}"
