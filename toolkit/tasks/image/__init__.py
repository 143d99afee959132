"""The image task: simulated digit devices and a small CNN (light: imports nothing)."""
