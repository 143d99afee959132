"""Fixtures shared across test modules live here, so a session-scoped fixture is built once per session."""

from __future__ import annotations

import torch

from service_fixtures import svc_config, svc_export, svc_keys, svc_run, svc_server  # noqa: F401


# The tests' models are tiny: one thread is as fast as two, and it keeps the test process and the servers it
# starts from fighting over the cores (thread oversubscription made steps 10x slower on a 2-core machine).
torch.set_num_threads(1)
