"""The service's OpenAPI document: FastAPI's, plus the task's request schema, examples and the bearer-key scheme."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from toolkit.protocol import routes

EXAMPLES_SEED = 0  # the published examples are the same at every start


def request_body_doc(examples: list[dict]) -> dict:
    """The generate request body: the task's schema (a component) with example bodies (`synthetic_examples`), or
    the same fields in the compact binary form of `toolkit.protocol.wire`."""
    from toolkit.protocol.wire import MEDIA_TYPE

    media: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/GenerateRequest"}}
    if examples:
        media["examples"] = {f"device{i}": {"summary": "a made-up device's recent samples", "value": body}
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


def synthetic_examples(templates: list[dict], count: int, acceptable: Callable[[dict], bool]) -> list[dict]:
    """`count` example bodies shaped like `templates` (test devices' bodies) that hold none of their data (the
    OpenAPI document needs no key): every string field reads "example-N"; every number array keeps a template's
    shape and gets values drawn uniformly between the smallest and largest that field holds across the templates
    (integers stay integers, an ascending 1-D array stays ascending); other values are kept. A drawn body that is
    not `acceptable` (the service's own checks) is left out, so there may be fewer."""
    import numpy as np

    if not templates or count <= 0:
        return []
    rng = np.random.default_rng(EXAMPLES_SEED)
    ranges: dict[str, tuple[float, float]] = {}
    for name in templates[0]:
        values = [np.asarray(t[name], dtype=float).ravel() for t in templates if _numeric(t.get(name))]
        values = [v for v in values if v.size]
        if values:
            ranges[name] = (min(float(v.min()) for v in values), max(float(v.max()) for v in values))
    examples = []
    for i in range(count):
        body = {}
        for name, value in templates[i % len(templates)].items():
            if isinstance(value, str):
                body[name] = f"example-{i}"
            elif _numeric(value) and name in ranges:
                body[name] = _drawn(np.asarray(value), ranges[name], rng)
            else:
                body[name] = value
        if acceptable(body):
            examples.append(body)
    return examples


def _numeric(value: Any) -> bool:
    """A (nested) list of numbers, not of booleans."""
    import numpy as np

    return isinstance(value, list) and np.asarray(value).dtype.kind in "iuf"


def _drawn(template, bounds: tuple[float, float], rng) -> list:
    import numpy as np

    low, high = bounds
    if template.dtype.kind in "iu":
        drawn = rng.integers(int(low), int(high), size=template.shape, endpoint=True)
    else:
        drawn = rng.uniform(low, high, size=template.shape)
    if template.ndim == 1 and np.all(np.diff(template) >= 0):
        drawn = np.sort(drawn)
    return drawn.tolist()
