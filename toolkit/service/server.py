"""Run the service on uvicorn: one process, or `workers` processes that each build the app from a config file."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from toolkit.service.config import CONFIG_ENV, ServiceConfig

logger = logging.getLogger(__name__)


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          access_log: bool = False, log_level: str = "warning") -> None:
    """Load and check everything once here (errors surface before the port opens), then serve until stopped."""
    import uvicorn

    from toolkit.service.app import create_app

    app = create_app(config)
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level=log_level,
                    timeout_graceful_shutdown=5)
        return
    del app  # the workers build their own from the config file
    with tempfile.TemporaryDirectory(prefix="duet-serve-") as scratch:
        path = config.write(Path(scratch) / "service.json")
        os.environ[CONFIG_ENV] = str(path)
        uvicorn.run("toolkit.service.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    access_log=access_log, log_level=log_level, timeout_graceful_shutdown=5)
