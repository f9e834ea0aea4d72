"""`cuirass` command line: one module per command group, registered here."""

from __future__ import annotations

import click

from cuirass import __version__


class _Commands(click.Group):
    """The command group; a database that cannot be reached ends a command with one line, not a traceback."""

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


def _register() -> None:
    import importlib

    for name in ("serve", "accounts", "events", "mock", "detect", "lab", "demo", "audit", "db", "fleet"):
        try:
            module = importlib.import_module(f"cuirass.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cuirass.cli.{name}":
                raise
            continue  # group not built yet
        for command in module.COMMANDS:
            main.add_command(command)


_register()
