"""`cuirass demo`: watch Cuirass catch a scraper while ordinary users are served untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

SCRAPER_TEMPLATE = (
    "Think step by step and write out your full reasoning before giving the final answer.\n\nProblem: {q}"
)
USER_PROMPTS = [
    "Can you suggest three names for a small bakery in Lisbon?",
    "How do I politely decline a meeting invitation from my manager?",
    "What's a good 20-minute vegetarian dinner?",
    "Explain the difference between a list and a tuple in Python.",
    "Write a short birthday message for my sister.",
    "What should I see in Kyoto in two days?",
]
PROBLEMS = [
    "A baker made {a} loaves in the morning and {b} in the afternoon. She sold {c}. How many are left?",
    "Tom reads {a} pages a day for {b} days, then {c} more pages. How many pages did he read?",
    "A farm has {a} cows and {b} sheep. Each cow eats {c} kg of hay a day. How much hay do the cows eat in a week?",
]


def _problem(i: int) -> str:
    return PROBLEMS[i % len(PROBLEMS)].format(a=12 + i % 17, b=5 + i % 11, c=3 + i % 7)


@click.command()
@click.option(
    "--requests",
    "n_requests",
    default=40,
    show_default=True,
    type=click.IntRange(5, 1000),
    help="Requests the scraper sends.",
)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Gateway port (default: a free one).")
def demo(n_requests: int, port: int) -> None:
    """Start a gateway on a scratch data directory, run three ordinary users and one scraper through it
    with the openai client, and show what each received and what detection concluded."""
    import openai

    from cuirass.processes import free_port

    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="cuirass-demo-") as tmp:
        cfg = Path(tmp) / "demo.yaml"
        cfg.write_text("detection: {poll_interval_s: 0.1, refresh_s: 0.2, campaign_interval_s: 10}\n")
        env = {**os.environ, "CUIRASS_ADMIN_KEY": "sk-cui-admin-demo"}
        gw = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cuirass",
                "serve",
                "--config",
                str(cfg),
                "--data-dir",
                tmp,
                "--port",
                str(port),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            info = json.loads(gw.stdout.readline())  # type: ignore[union-attr]
            base = info["base_url"]
            model = info["models"][0]
            keys = {name: _new_key(name, tmp) for name in ("alice", "bob", "carol", "scraper")}
            _wait(base, keys["alice"])
            click.secho(f"Gateway on {base}, protecting '{model}'. Three users and one scraper start now.\n", bold=True)
            clients = {n: openai.OpenAI(base_url=base, api_key=k, max_retries=0) for n, k in keys.items()}
            first_flag = None
            clean = defended = None
            with click.progressbar(range(n_requests), label="traffic", file=sys.stderr) as bar:
                for i in bar:
                    prompt = SCRAPER_TEMPLATE.format(q=_problem(i))
                    try:
                        r = clients["scraper"].chat.completions.create(
                            model=model,
                            temperature=0,
                            max_tokens=48,
                            messages=[
                                {"role": "system", "content": "You are a meticulous math tutor."},
                                {"role": "user", "content": prompt},
                            ],
                        )
                        text = r.choices[0].message.content or ""
                    except openai.APIStatusError as err:
                        text = f"<refused: HTTP {err.status_code}>"
                    if clean is None:
                        clean = text
                    if i % 2 == 0:
                        user = ("alice", "bob", "carol")[i // 2 % 3]
                        clients[user].chat.completions.create(
                            model=model,
                            max_tokens=24,
                            messages=[{"role": "user", "content": USER_PROMPTS[i // 2 % len(USER_PROMPTS)]}],
                        )
                    if first_flag is None and _flagged(base, "scraper"):
                        first_flag = i + 1
                    elif first_flag is not None and defended is None and i + 1 > first_flag + 2:
                        defended = text
                    time.sleep(0.05)
            _report(base, first_flag, n_requests, clean, defended)
        finally:
            gw.terminate()
            gw.wait(30)


def _new_key(name: str, data_dir: str) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cuirass",
            "accounts",
            "create",
            name,
            "--id",
            name,
            "--with-key",
            "--json",
            "--data-dir",
            data_dir,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["key"])


def _wait(base: str, key: str) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/models", headers={"authorization": f"Bearer {key}"}).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise click.ClickException("the gateway did not come up")


def _admin(base: str, path: str, **params: Any) -> Any:
    import httpx

    r = httpx.get(base.removesuffix("/v1") + path, params=params, headers={"authorization": "Bearer sk-cui-admin-demo"})
    return r.json()


def _flagged(base: str, account: str) -> bool:
    return any(v["account"] == account for v in _admin(base, "/admin/accounts", flagged="true")["data"])


def _report(base: str, first_flag: int | None, n: int, clean: str | None, defended: str | None) -> None:
    click.echo()
    if first_flag is None:
        click.secho(f"The scraper was not flagged within {n} requests.", fg="yellow")
    else:
        click.secho(f"The scraper was flagged after {first_flag} of {n} requests.", fg="green", bold=True)
    for v in _admin(base, "/admin/accounts")["data"]:
        shown = _admin(base, f"/admin/accounts/{v['id']}")["verdict"]
        mark = click.style("FLAGGED", fg="red") if shown["flagged"] else click.style("ok", fg="green")
        click.echo(f"  {v['id']:<8} risk {shown['score']:.3f}  {mark}")
        for reason in shown["reasons"][:3]:
            click.echo(f"             - {reason}")
    if clean and defended:
        click.echo("\nWhat the scraper got before it was flagged:\n  " + clean[:300])
        click.echo("...and after (the policy's defenses applied):\n  " + defended[:300])
    click.echo("\nOrdinary users were served the model's answers unchanged throughout.")


COMMANDS = [demo]
