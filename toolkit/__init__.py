"""DUET toolkit: tuning-free on-device personalisation with generated parameter slots."""

__version__ = "0.1.0"
