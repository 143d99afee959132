"""Scoring a run: Base, per-device fine-tuning and DUET on every test device, and the report tables."""
