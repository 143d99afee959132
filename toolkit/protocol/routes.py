"""The service's URL paths, defined once: the server, its middleware and OpenAPI document, the client, the load
test and the benchmark import them (the Kotlin and Swift cores spell the same paths; docs/formats.md)."""

from __future__ import annotations

API_PREFIX = "/v1/"  # every path under it needs an API key
MANIFEST = "/v1/manifest"
ARTIFACTS = "/v1/artifacts"  # + "/{target}"
ARTIFACT_ROUTE = ARTIFACTS + "/{target}"
BASE_SLOTS = "/v1/slots/base"
GENERATE = "/v1/generate"
STATIC_FLOOR = "/v1/static"  # the benchmark's HTTP floor (serve --static-floor only)
HEALTH = "/healthz"
METRICS = "/metrics"
OPENAPI = "/openapi.json"


def artifact(target: str) -> str:
    return f"{ARTIFACTS}/{target}"
