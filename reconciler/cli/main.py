"""`reconciler`: the command group. Each command lives in cli/commands/ and is imported only when it runs, so
`reconciler --version` starts in a blink (no boto3, no botocore models)."""

from __future__ import annotations

import importlib

import click

COMMANDS = {  # a command's name -> its module in cli/commands (the command is the function of that name)
    "apply": "apply",
    "export": "export",
    "health": "health",
    "iam-policy": "iam_policy",
    "plan": "plan",
    "run": "run",
    "sandbox": "sandbox",
    "validate": "validate",
    "writeback": "writeback",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when asked for (click's documented lazy loading)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(f"reconciler.cli.commands.{module}"), module)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reconciler")
def cli() -> None:
    """Keep a small AWS web stack exactly as its YAML says."""


def main() -> None:
    cli(prog_name="reconciler")


if __name__ == "__main__":
    main()
