"""Tasks: each owns its data and model code (toolkit.tasks.base is the contract); toolkit.registry.TASKS names them.

Imports nothing itself, so a task's light options module (e.g. recommendation_options) loads without torch.
"""
