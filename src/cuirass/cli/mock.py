"""`cuirass mock-upstream`: a fake OpenAI-compatible server for tests and benchmarks."""

from __future__ import annotations

import click

from cuirass.mock_upstream import FAULTS, MockConfig, create_mock_app


@click.command("mock-upstream")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--model",
    "models",
    multiple=True,
    default=["mock-model"],
    show_default=True,
    help="Model name to serve; repeat for several.",
)
@click.option(
    "--latency-ms", default=0.0, show_default=True, type=click.FloatRange(0), help="Delay before the first byte."
)
@click.option(
    "--tokens-per-s",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Streaming speed (0: as fast as possible).",
)
@click.option(
    "--tokens",
    "default_tokens",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Completion length when the request sets no max_tokens.",
)
@click.option("--fault", type=click.Choice(FAULTS), help="Fault to inject into a fraction of requests.")
@click.option("--fault-rate", default=1.0, show_default=True, type=click.FloatRange(0, 1))
@click.option("--reasoning", is_flag=True, help="Also return reasoning_content, like a reasoning model.")
@click.option("--api-key", help="Require this bearer key.")
def mock_upstream(
    host: str,
    port: int,
    models: tuple[str, ...],
    latency_ms: float,
    tokens_per_s: float,
    default_tokens: int,
    fault: str | None,
    fault_rate: float,
    reasoning: bool,
    api_key: str | None,
) -> None:
    """Serve deterministic fake completions at http://HOST:PORT/v1.

    Per-request control through a body field the gateway passes through:
    {"mock": {"fault": "500|timeout|cut|reset|429|400", "latency_ms": 50, "tokens_per_s": 100}}.
    """
    import uvicorn

    cfg = MockConfig(
        models=models,
        latency_ms=latency_ms,
        tokens_per_s=tokens_per_s,
        default_tokens=default_tokens,
        fault=fault,
        fault_rate=fault_rate if fault else 0.0,
        reasoning=reasoning,
        api_key=api_key,
    )
    click.echo(f"mock upstream on http://{host}:{port}/v1 serving {', '.join(models)}", err=True)
    uvicorn.run(
        create_mock_app(cfg),
        host=host,
        port=port,
        log_level="critical",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=1,
    )


COMMANDS = [mock_upstream]
