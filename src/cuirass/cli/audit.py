"""`cuirass audit ...`: provenance audits, key epochs, cohort membership and the tamper-evident log."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from cuirass.cli.common import emit, store_options
from cuirass.config import Settings

_EXISTING = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
_OUT = click.Path(dir_okay=False, writable=True, path_type=Path)


@click.group()
def audit() -> None:
    """Prove provenance: score suspect outputs for our watermarks; keep and check the audit trail."""


def _engine(settings: Settings) -> Any:
    from cuirass.storage.migrate import make_engine

    return make_engine(settings.database_url)


@audit.command("texts")
@click.option(
    "--in",
    "in_path",
    type=_EXISTING,
    required=True,
    help="Suspect outputs: JSON lines with a 'text' field, or one text per line.",
)
@click.option(
    "--control",
    "control_path",
    type=_EXISTING,
    help="A corpus that never saw our outputs: the same audit must find nothing, p-values uniform.",
)
@click.option("--out", "out_path", type=_OUT, help="Write the JSON report here.")
@click.option("--html", "html_path", type=_OUT, help="Write the self-contained HTML report here.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Family-wise error rate over all keys tested (Holm-Bonferroni).",
)
@click.option(
    "--channel",
    "channel_names",
    multiple=True,
    default=("text", "token"),
    show_default=True,
    help="Watermark channels to score with (those not installed are skipped, and said so); signature needs "
    "a JSON-lines corpus whose every line has its `prompt`.",
)
@click.option("--tokenizer", help="Tokenizer (Hugging Face path) of our model, for the token channel.")
@store_options
def audit_texts_cmd(
    settings: Settings,
    as_json: bool,
    in_path: Path,
    control_path: Path | None,
    out_path: Path | None,
    html_path: Path | None,
    alpha: float,
    channel_names: tuple[str, ...],
    tokenizer: str | None,
) -> None:
    """Score a corpus against every watermark channel, cohort and key epoch; name the cohorts and accounts."""
    from cuirass.keyring import Keyring
    from cuirass.marks.epochs import EpochStore
    from cuirass.prove.channels import CHANNELS, options_of
    from cuirass.prove.cohorts import cohort_names
    from cuirass.prove.corpus import CorpusError, read_corpus
    from cuirass.prove.texts import audit_texts

    try:
        corpus = read_corpus(in_path)
        control = read_corpus(control_path) if control_path else None
    except CorpusError as exc:
        raise click.ClickException(str(exc)) from None
    if "signature" in channel_names and (corpus.prompts is None or (control is not None and control.prompts is None)):
        raise click.ClickException("channel signature: every JSON line of the corpus (and control) needs its `prompt`")
    channels = []
    for name in dict.fromkeys(channel_names):
        if name not in CHANNELS:
            raise click.ClickException(f"unknown channel {name!r}; choose from {', '.join(CHANNELS)}")
        options = options_of(name, settings.policy.options)
        if name == "token":
            options["tokenizer"] = tokenizer
        try:
            ch = CHANNELS[name](options)
        except ValueError as exc:
            raise click.ClickException(f"channel {name}: {exc}") from None
        if ch is None:
            click.echo(
                f"note: channel {name!r} skipped (token: needs cuirass.marks.logit, transformers and --tokenizer)",
                err=True,
            )
        else:
            channels.append(ch)
    if not channels:
        raise click.ClickException("no watermark channel available to score with")
    engine = _engine(settings)
    keyring = Keyring.for_data_dir(settings.data_dir, settings.policy.n_cohorts)
    report = audit_texts(
        corpus,
        channels=channels,
        keyring=keyring,
        engine=engine,
        alpha=alpha,
        control=control,
        cohorts=cohort_names(settings.policy.n_cohorts, settings.policy.n_honeypot_cohorts),
        epochs=EpochStore(engine).all(),
        command=shlex.join(["cuirass", "audit", *sys.argv[2:]]),
    )
    _publish(report, out_path, html_path, as_json, ("ks_uniform", "passed"))


_SECRET_OPTIONS = ("--api-key", "--control-api-key")


def _redacted(args: list[str]) -> list[str]:
    """The command line for the report, with API keys replaced by a placeholder (reports are handed out)."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and args[i - 1] in _SECRET_OPTIONS:
            out.append("REDACTED")
        elif a.startswith(tuple(o + "=" for o in _SECRET_OPTIONS)):
            out.append(a.split("=", 1)[0] + "=REDACTED")
        else:
            out.append(a)
    return out


def _question_options(f: Any) -> Any:
    """The options `audit endpoint` and `audit weights` share: what is asked, how, and what is written."""
    options = [
        click.option(
            "--probes",
            "probes_path",
            type=_EXISTING,
            help="JSON lines of prompts ({'prompt': ...}); default: prompts our event log shows were harvested.",
        ),
        click.option("--queries", type=click.IntRange(1), default=64, show_default=True, help="Answers to collect."),
        click.option("--out", "out_path", type=_OUT, help="Write the JSON report here."),
        click.option("--html", "html_path", type=_OUT, help="Write the self-contained HTML report here."),
        click.option(
            "--alpha",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            default=0.01,
            show_default=True,
            help="Family-wise error rate over all tests (Holm-Bonferroni).",
        ),
        click.option("--max-tokens", type=click.IntRange(1), default=256, show_default=True, help="Per answer."),
        click.option(
            "--temperature",
            type=click.FloatRange(0),
            default=1.0,
            show_default=True,
            help="Sampling temperature of the probe answers (canary questions use 0).",
        ),
        click.option(
            "--seed", type=int, help="Ask question i with seed SEED+i (reproducible where seeds are honoured)."
        ),
        click.option(
            "--tokenizer",
            help="Our model's tokenizer (directory or builtin:NAME) for the radioactivity test; "
            "default: the first local model in the configuration.",
        ),
        click.option(
            "--canaries/--no-canaries",
            default=True,
            show_default=True,
            help="Probe for the canaries the ledger says were planted.",
        ),
        click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr."),
        store_options,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _audit(settings: Settings, as_json: bool, suspect: Any, control: Any, concurrency: int, **q: Any) -> None:
    """Run one audit (an API or weights on either side) and publish its report."""
    from cuirass.prove.corpus import CorpusError
    from cuirass.prove.endpoint import AuditOptions, audit_endpoint, context
    from cuirass.prove.probes import read_probes

    try:
        probes = read_probes(q["probes_path"]) if q["probes_path"] else None
        ctx = context(settings, tokenizer=q["tokenizer"])
    except (CorpusError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for note in ctx.notes:
        click.echo(f"note: {note}", err=True)
    opts = AuditOptions(
        queries=q["queries"],
        max_tokens=q["max_tokens"],
        temperature=q["temperature"],
        concurrency=concurrency,
        seed=q["seed"],
        alpha=q["alpha"],
        canaries=q["canaries"],
        progress=q["progress"],
    )
    try:
        report = audit_endpoint(
            suspect,
            ctx,
            opts,
            probes=probes,
            control=control,
            command=shlex.join(["cuirass", "audit", *_redacted(sys.argv[2:])]),
        )
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    _publish(report, q["out_path"], q["html_path"], as_json, ("min_p", "min_p_corrected", "ks_uniform", "passed"))


@audit.command("endpoint")
@click.option("--base-url", required=True, help="The suspect's OpenAI-compatible API, e.g. https://host/v1.")
@click.option("--model", required=True, help="The suspect model's name at that API.")
@click.option("--api-key", envvar="CUIRASS_SUSPECT_API_KEY", help="API key for the suspect ($CUIRASS_SUSPECT_API_KEY).")
@click.option("--control-base-url", help="A reference model that never saw our outputs: same questions, same tests.")
@click.option("--control-model", help="The control model's name (default: --model).")
@click.option("--control-api-key", envvar="CUIRASS_CONTROL_API_KEY", help="API key for the control.")
@click.option("--concurrency", type=click.IntRange(1), default=4, show_default=True, help="Requests in flight.")
@_question_options
def audit_endpoint_cmd(
    settings: Settings,
    as_json: bool,
    base_url: str,
    model: str,
    api_key: str | None,
    control_base_url: str | None,
    control_model: str | None,
    control_api_key: str | None,
    concurrency: int,
    **q: Any,
) -> None:
    """Question a suspect model's API; test its answers for our watermarks (radioactivity) and canaries."""
    from cuirass.prove.suspect import Endpoint

    control = Endpoint(control_base_url, control_model or model, control_api_key) if control_base_url else None
    _audit(settings, as_json, Endpoint(base_url, model, api_key), control, concurrency, **q)


_MODEL_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@audit.command("weights")
@click.argument("model_dir", type=_MODEL_DIR)
@click.option("--control", "control_dir", type=_MODEL_DIR, help="A model that never saw our outputs (directory).")
@click.option("--device", default="cpu", show_default=True, help="Where the models run: cpu, cuda, cuda:1, auto.")
@click.option("--threads", type=click.IntRange(1), help="Torch threads (default: torch's choice).")
@_question_options
def audit_weights_cmd(
    settings: Settings,
    as_json: bool,
    model_dir: Path,
    control_dir: Path | None,
    device: str,
    threads: int | None,
    **q: Any,
) -> None:
    """Audit a suspect whose weights we hold (a Hugging Face model directory): it answers the probes in-process,
    every channel of `audit endpoint` scores the answers, and its likelihood of each keyed answer signature
    is tested too (the likelihood channel: far fewer probes than sampled text needs)."""
    from cuirass.prove.weights import Weights

    control = Weights(control_dir, device=device, threads=threads) if control_dir else None
    _audit(settings, as_json, Weights(model_dir, device=device, threads=threads), control, 1, **q)


@audit.command("verify-log")
@click.option("--file", "file_path", type=_EXISTING, help="Verify an exported log (JSON lines) instead.")
@click.option("--expect-head", help="A head published earlier ('SEQ:HASH'); it must still be in the chain.")
@store_options
def verify_log(settings: Settings, as_json: bool, file_path: Path | None, expect_head: str | None) -> None:
    """Check the hash chain; say where a record was edited, deleted, inserted or moved. Exit 1 if broken."""
    from cuirass.audit_log import AuditLog, verify_file

    result = verify_file(file_path, expect_head) if file_path else AuditLog(_engine(settings)).verify(expect_head)
    where = str(file_path) if file_path else "audit log"

    def human(d: dict[str, Any]) -> str:
        if d["ok"]:
            return f"{where}: OK, {d['n_records']} records, head {d['head'] or '-'} (publish it as an anchor)"
        return "\n".join(
            [f"{where}: BROKEN ({len(d['problems'])} problems)"]
            + [
                f"  line {p['line']}" + (f" (seq {p['seq']})" if p["seq"] is not None else "") + f": {p['message']}"
                for p in d["problems"]
            ]
        )

    emit(result.to_dict(), as_json, human)
    if not result.ok:
        sys.exit(1)


@audit.command("export-log")
@click.option("--out", "out_path", type=_OUT, required=True, help="JSON-lines file to write.")
@store_options
def export_log(settings: Settings, as_json: bool, out_path: Path) -> None:
    """Write the audit log as JSON lines, for a third party to verify with `verify-log --file`."""
    from cuirass.audit_log import AuditLog

    n = AuditLog(_engine(settings)).export(out_path)
    emit({"records": n, "out": str(out_path)}, as_json, lambda d: f"wrote {d['records']} records to {d['out']}")


@audit.command("rotate")
@click.option("--by", required=True, help="Who rotates (recorded).")
@click.option("--reason", required=True, help="Why (recorded).")
@store_options
def rotate(settings: Settings, as_json: bool, by: str, reason: str) -> None:
    """Start a new key epoch; older epochs stay in every audit."""
    from cuirass.marks.epochs import EpochStore

    e = EpochStore(_engine(settings)).rotate(by, reason)
    emit(e.to_dict(), as_json, lambda d: f"epoch {d['epoch']} started (by {by})")


@audit.command("epochs")
@store_options
def epochs(settings: Settings, as_json: bool) -> None:
    """List the key epochs and when each was in force."""
    from cuirass.marks.epochs import EpochStore

    rows = [e.to_dict() for e in EpochStore(_engine(settings)).all()]

    def line(r: dict[str, Any]) -> str:
        end = "now" if r["ended"] is None else f"{r['ended']:.0f}"
        return f"epoch {r['epoch']}: from {r['started']:.0f} to {end}  by {r['by']}: {r['reason']}"

    emit(rows, as_json, lambda rs: "\n".join(line(r) for r in rs))


@audit.command("cohorts")
@click.option("--cohort", help="Only this cohort (e.g. c003, h001).")
@click.option("--epoch", type=int, help="Only while this key epoch was in force.")
@click.option("--moves", "show_moves", is_flag=True, help="List changes of cohort instead (honeypot moves).")
@store_options
def cohorts(settings: Settings, as_json: bool, cohort: str | None, epoch: int | None, show_moves: bool) -> None:
    """Which accounts received answers keyed to which cohort, and when (from the event log)."""
    from cuirass.marks.epochs import EpochStore
    from cuirass.prove.cohorts import members, moves
    from cuirass.storage.stores import open_event_log

    engine = _engine(settings)
    events = open_event_log(engine)
    if show_moves:
        rows = moves(events)
        emit(
            rows,
            as_json,
            lambda rs: (
                "\n".join(f"{r['ts']:.0f} {r['account']}: {r['from'] or '-'} -> {r['to']}" for r in rs) or "no moves"
            ),
        )
        return
    start = end = None
    if epoch is not None:
        found = [e for e in EpochStore(engine).all() if e.epoch == epoch]
        if not found:
            raise click.ClickException(f"no key epoch {epoch} (see `cuirass audit epochs`)")
        start, end = found[0].started, found[0].ended
    rows = [m.to_dict() for m in members(events, cohort, start, end)]
    emit(
        rows,
        as_json,
        lambda rs: (
            "\n".join(
                f"{r['cohort']} {r['account']}: {r['n_events']} keyed answers, {r['first_ts']:.0f}..{r['last_ts']:.0f}"
                for r in rs
            )
            or "none"
        ),
    )


@audit.command("checkpoint")
@store_options
def checkpoint_cmd(settings: Settings, as_json: bool) -> None:
    """Append cohort moves and defenses applied since the last checkpoint to the audit log (run it from cron)."""
    from cuirass.audit_log import AuditLog
    from cuirass.prove.cohorts import checkpoint
    from cuirass.storage.stores import open_event_log

    engine = _engine(settings)
    data = checkpoint(open_event_log(engine), AuditLog(engine))
    emit(
        data,
        as_json,
        lambda d: f"checkpoint through event {d['through_seq']}: {d['events']} events, {d['moves']} cohort moves",
    )


COMMANDS = [audit]


def _publish(
    report: dict[str, Any], out_path: Path | None, html_path: Path | None, as_json: bool, control_keys: tuple[str, ...]
) -> None:
    """Write the JSON and HTML reports when asked, then print the conclusion and the implicated cohorts."""
    from cuirass.prove.report import write_html, write_json

    if out_path:
        write_json(report, out_path)
    if html_path:
        write_html(report, html_path)
    summary = {k: report[k] for k in ("conclusion", "channels", "inputs")}
    summary["implicated"] = [
        {
            "channel": t["channel"],
            "cohort": t["cohort"],
            "epoch": t["epoch"],
            "p_value": t["p_value"],
            "p_corrected": t["p_corrected"],
            "accounts": [a["account"] for a in t["accounts"]],
        }
        for t in report["implicated"]
    ]
    if "control" in report:
        summary["control"] = {k: report["control"][k] for k in control_keys}
    emit(
        summary,
        as_json,
        lambda d: (
            d["conclusion"]
            + "".join(
                f"\n  {t['cohort']} epoch {t['epoch']} [{t['channel']}]: p={t['p_value']:.3g} "
                f"holm={t['p_corrected']:.3g} accounts: {', '.join(t['accounts']) or '-'}"
                for t in d["implicated"]
            )
        ),
    )
