"""The cloud parameter-generation service: FastAPI app, API keys, micro-batching, metrics (`cli.py serve`)."""

from __future__ import annotations
