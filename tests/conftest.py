"""Fixtures shared across test modules live here, so a session-scoped fixture is built once per session."""

from __future__ import annotations

from service_fixtures import svc_config, svc_export, svc_keys, svc_run, svc_server  # noqa: F401
