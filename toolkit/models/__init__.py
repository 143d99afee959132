"""Models: the slot head every task shares, and each task's backbones."""
