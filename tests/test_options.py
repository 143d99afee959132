"""Command-line options come from the config dataclasses' fields (toolkit.options), once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import cli
from toolkit import registry
from toolkit.config import FinetuneConfig, GeneratorConfig, TrainConfig
from toolkit.options import click_options, offered, option, values_for
from toolkit.service.config import ServiceConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Example:
    HELP_PREFIX = "Example: "
    width: int = option(3, "How wide.", minimum=1, maximum=9)
    mode: str = option("a", "Which mode.", choices=("a", "b"))
    fast: bool = option(False, "Go fast.")
    strict: bool = option(True, "Check everything.")
    limit: float | None = option(2.0, "Upper bound [task default].", cli_default=None, flag="--cap")
    hidden_setting: int = 7  # no option


def run_example(args: list[str]) -> tuple[int, dict, str]:
    seen = {}

    @click.command()
    @click_options(Example)
    def command(**params):
        seen.update(values_for(Example, params))

    result = CliRunner().invoke(command, args)
    return result.exit_code, seen, result.output


def test_fields_become_options_with_their_types_defaults_and_flags():
    code, seen, _ = run_example([])
    assert code == 0 and seen == {"width": 3, "mode": "a", "fast": False, "strict": True, "limit": None}
    code, seen, _ = run_example(["--width", "5", "--mode", "b", "--fast", "--no-strict", "--cap", "0.5"])
    assert code == 0 and seen == {"width": 5, "mode": "b", "fast": True, "strict": False, "limit": 0.5}
    assert Example(**seen).limit == 0.5


@pytest.mark.parametrize("args", [["--width", "0"], ["--width", "x"], ["--mode", "c"], ["--hidden-setting", "1"]])
def test_values_outside_the_field_declaration_are_refused(args):
    code, _, output = run_example(args)
    assert code == 2, output


def test_help_comes_from_the_field_with_the_class_prefix():
    _, _, output = run_example(["--help"])
    assert "Example: How wide." in output and "Example: Upper bound [task default]." in output
    assert "hidden-setting" not in output


def test_train_offers_every_declared_field_and_every_task_option():
    train = cli.commands["train"]
    names = {p.name for p in train.params}
    declared = [f.name for cls in (TrainConfig, GeneratorConfig, *registry.task_options().values()) for f in offered(cls)]
    assert set(declared) <= names
    assert {f.name for f in offered(FinetuneConfig)} <= {p.name for p in cli.commands["evaluate"].params}
    assert {f.name for f in offered(ServiceConfig)} <= {p.name for p in cli.commands["serve"].params}
    help_text = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200).output
    assert "Image task: Simulated training devices." in help_text
    assert "Recommendation task: Item embedding size." in help_text


def test_the_cli_stays_thin():
    entry = (ROOT / "cli.py").read_text()  # the repository's entry: one import of the package's commands
    assert [line for line in entry.splitlines() if line.startswith(("import", "from"))] == [
        "from toolkit.cli.commands import cli"]
    source = (ROOT / "toolkit" / "cli" / "commands.py").read_text()
    assert "write_text" not in source and "open(" not in source  # the library writes files


def test_every_service_option_is_in_the_services_documentation():
    """docs/service.md lists every option of `cli.py serve` (its tables give each limit's option and default)."""
    from toolkit.service.server import ServerOptions

    doc = (ROOT / "docs" / "service.md").read_text()
    flags = [(spec.metadata["flag"] or "--" + spec.name.replace("_", "-")).split("/")[0]
             for cls in (ServerOptions, ServiceConfig) for spec in offered(cls) if not spec.metadata["hidden"]]
    assert len(flags) > 20 and not [flag for flag in flags if f"`{flag}" not in doc]


def test_every_number_the_cli_takes_is_range_checked():
    """No int or float option of any command is a bare click.INT or click.FLOAT: each has a range, and a float's
    range refuses NaN and infinity."""
    def commands(group, prefix=""):
        for name, command in group.commands.items():
            yield f"{prefix}{name}", command
            if isinstance(command, click.Group):
                yield from commands(command, f"{prefix}{name} ")

    bare = [f"{name} --{param.name}" for name, command in [("", cli), *commands(cli)] for param in command.params
            if param.type in (click.INT, click.FLOAT)]
    assert not bare, bare
    lr = next(p for p in cli.commands["train"].params if p.name == "lr").type
    for text in ("nan", "inf", "-1", "0"):
        with pytest.raises(click.BadParameter):
            lr.convert(text, None, None)
    assert lr.convert("0.001", None, None) == 0.001
