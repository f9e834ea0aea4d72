"""Options and output shared by the command groups: where the state lives, and --json."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from cuirass.config import ConfigError, Settings, load_settings


def location_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--config and --data-dir, passed on as `config_path` and `data_dir` (for commands that hand them on to
    the processes they start, or resolve settings themselves)."""
    fn = click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Directory holding the embedded state (default: ./.cuirass).",
    )(fn)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        envvar="CUIRASS_CONFIG",
        help="YAML configuration file (default: $CUIRASS_CONFIG).",
    )(fn)


def store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --data-dir and --json, resolved into a `settings` argument."""

    @location_options
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    @functools.wraps(fn)
    def wrapper(config_path: str | None, data_dir: str | None, as_json: bool, **kwargs: Any) -> Any:
        settings = settings_or_exit(config_path, data_dir=data_dir)
        return fn(settings=settings, as_json=as_json, **kwargs)

    return wrapper


def settings_or_exit(config_path: str | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config_path, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def emit(data: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    """Print `data` as JSON, or as `human(data)` for people."""
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        click.echo(human(data))
