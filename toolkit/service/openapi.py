"""The service's OpenAPI document: FastAPI's, plus the task's request schema, examples and the bearer-key scheme."""

from __future__ import annotations

from typing import Any, Mapping

from toolkit.protocol import routes


def request_body_doc(examples: list[dict]) -> dict:
    """The generate request body: the task's schema (a component) with example bodies of test devices, or the
    same fields in the compact binary form of `toolkit.protocol.wire`."""
    from toolkit.protocol.wire import MEDIA_TYPE

    media: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/GenerateRequest"}}
    if examples:
        media["examples"] = {f"device{i}": {"summary": "a test device's recent samples", "value": body}
                             for i, body in enumerate(examples)}
    return {"required": True,
            "description": f"JSON, or as {MEDIA_TYPE} the same fields as a safetensors file: each array field a tensor "
                           "(integers I32 or I64, numbers F32 or F64), each string field a '__metadata__' entry",
            "content": {"application/json": media, MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}


def build_openapi(app, request_schema: Mapping[str, Any]) -> dict:
    """FastAPI's document with the task's schema as components/schemas/GenerateRequest and security on /v1/."""
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schema = dict(request_schema)
    for name, sub in schema.pop("$defs", {}).items():  # the task's definitions move into components
        schemas[f"GenerateRequest_{name}"] = _rewrite_refs(sub)
    schema.pop("$schema", None)
    schemas["GenerateRequest"] = _rewrite_refs(schema)
    components["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer",
                                                "description": "an API key from the service's keys file"}}
    for path, operations in doc["paths"].items():
        if path.startswith(routes.API_PREFIX):
            for operation in operations.values():
                operation["security"] = [{"apiKey": []}]
    return doc


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/GenerateRequest_")
                    if k == "$ref" and isinstance(v, str) else _rewrite_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node
