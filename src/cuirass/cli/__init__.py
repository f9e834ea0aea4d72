"""`cuirass` command line: one module per command group, registered here."""

from __future__ import annotations

import importlib

import click

from cuirass import __version__

# Each command's module, imported when the command runs (or when --help lists them all): `cuirass keys create`
# loads what keys need, not the gateway, the lab and the detector (about half a second less at every call).
_MODULES = {
    "accounts": "accounts",
    "audit": "audit",
    "db": "db",
    "demo": "demo",
    "detect": "detect",
    "events": "events",
    "fleet": "fleet",
    "keys": "accounts",
    "lab": "lab",
    "mock-upstream": "mock",
    "serve": "serve",
}


class _Commands(click.Group):
    """The command group: a command's module is imported when it runs (`_MODULES`); a database that cannot be
    reached ends a command with one line, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _MODULES.get(cmd_name)
        if module is None:
            return None
        commands: list[click.Command] = importlib.import_module(f"cuirass.cli.{module}").COMMANDS
        return next(c for c in commands if c.name == cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            import sqlalchemy as sa

            if isinstance(exc, sa.exc.OperationalError):
                first = str(exc.orig or exc).strip().splitlines()[0]
                raise click.ClickException(f"the database is unavailable: {first}") from None
            raise


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cuirass")
def main() -> None:
    """Cuirass: an OpenAI-compatible gateway that detects, answers and proves LLM distillation."""
