"""The command line (`cli.py` at the repository root and the `duet` console script are thin entries over it)."""
