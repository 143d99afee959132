"""The service's composition root: `create_app(config)` loads the state, adds the routes, the middleware and the
OpenAPI document; `app_from_env` is the factory of uvicorn worker processes."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from toolkit.service.auth import RateLimiter
from toolkit.service.config import ServiceConfig, config_from_env, proxy_networks
from toolkit.service.handlers import add_routes
from toolkit.service.middleware import ApiKeyMiddleware, HeadAsGet, HeaderLimit, MetricsMiddleware
from toolkit.service.openapi import build_openapi
from toolkit.service.responses import add_error_handlers
from toolkit.service.state import load_state


def create_app(config: ServiceConfig) -> FastAPI:
    """The service app of one process (loads the run and the exports now; raises DuetError if they are unusable)."""
    state = load_state(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import gc

        gc.collect()
        gc.freeze()  # the run's ~200k long-lived objects leave the GC's view: a full collection took 120 ms
        await state.batcher.start()
        try:
            yield
        finally:
            await state.batcher.stop()

    app = FastAPI(title="DUET parameter-generation service", version=state.model_version, lifespan=lifespan,
                  docs_url=None, redoc_url=None, redirect_slashes=False,
                  description="Generates the slot parameters of a device model from the device's recent samples. "
                              "Every /v1/ call needs 'Authorization: Bearer <API key>'.")
    app.state.duet = state
    add_error_handlers(app)
    add_routes(app, state)
    app.add_middleware(ApiKeyMiddleware, keys=state.keys, limiter=RateLimiter(config.rate_limit, config.rate_burst),
                       failed_logins=RateLimiter(config.auth_failure_rate, config.auth_failure_burst),
                       trusted_proxies=proxy_networks(config.trusted_proxies))
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, route_paths=[route.path for route in app.routes])
    app.add_middleware(HeaderLimit)
    app.add_middleware(HeadAsGet)

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, state.run.task.request_schema())
        return app.openapi_schema

    app.openapi = openapi
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: the settings come from $DUET_SERVICE_CONFIG."""
    return create_app(config_from_env())
