"""DUET command line: `python cli.py --help` (the same commands as the `duet` console script; toolkit.cli.commands)."""

from toolkit.cli.commands import cli

if __name__ == "__main__":
    cli()
