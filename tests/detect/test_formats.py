"""`cuirass detect run --format NAME` on the logs a provider already keeps (issue 22, item 2).

The lab's small traffic (tests/lab/conftest.py, SMALL) is written as each foreign log (foreign_logs.py) and
replayed through the real CLI in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from cuirass.lab.traffic import generate
from tests.conftest import cuirass
from tests.detect.foreign_logs import WRITERS, litellm_row, openai_line, otel_span
from tests.lab.conftest import SMALL

# What each format has no place for (or, for litellm's user agent, what its spend logs do not keep):
# the run must say so, and these are the fields removed from the Cuirass events it is compared with.
LACKING = {
    "otel": ["account_created", "action", "org", "payment_fingerprint"],
    "litellm": ["account_created", "action", "payment_fingerprint", "user_agent"],
    "openai-jsonl": ["action"],
}


Lab = tuple[Path, list[dict[str, Any]], set[str]]  # (events file, its events, the benign accounts)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    path = tmp_path_factory.mktemp("formats") / "small.jsonl"
    labels = generate(SMALL, path)
    benign = {a for a, info in labels["accounts"].items() if info["label"] == "benign"}
    return path, [orjson.loads(line) for line in path.read_bytes().splitlines()], benign


def detect(path: Path, fmt: str, *extra: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(summary, report, stderr) of `cuirass detect run --format fmt` on a log."""
    out = path.with_suffix(".report.json")
    run = cuirass(
        "detect", "run", "--format", fmt, "--events", str(path), "--out", str(out), "--no-progress", "--json", *extra
    )
    assert "Traceback" not in run.stderr, run.stderr
    return json.loads(run.stdout), json.loads(out.read_text()), run.stderr


def verdicts(report: dict[str, Any]) -> dict[str, tuple[float, bool, float | None]]:
    return {a["account"]: (a["score"], a["flagged"], a["first_flagged_ts"]) for a in report["accounts"]}


def without(event: dict[str, Any], lacking: list[str], params: list[str] | None) -> dict[str, Any]:
    stripped = {k: (None if k in lacking else v) for k, v in event.items()}
    if params is not None:
        stripped["params"] = {k: v for k, v in event["params"].items() if k in params}
    return stripped


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_same_verdicts_as_the_equivalent_cuirass_events(fmt: str, lab: Lab, tmp_path: Path) -> None:
    """One lab traffic file, written as a foreign log, gives the same verdicts (every account's score,
    flag and first-flag time, and the campaigns) as the same traffic in Cuirass's own events with the
    fields that format lacks removed from both: the foreign log never had them, and they are set to null
    (and, for OpenTelemetry, the request parameters it has no attribute for dropped) in the Cuirass events.
    The run's summary must name exactly those fields."""
    _, events, _ = lab
    log = WRITERS[fmt](events, tmp_path / f"log.{fmt}.jsonl")
    summary, report, _ = detect(log, fmt)
    assert summary["format"] == fmt
    assert summary["lacking"] == report["summary"]["lacking"] == LACKING[fmt]
    assert summary["events"] == len(events) and summary["malformed"] == 0
    if fmt == "otel":  # the HTTP server spans around the inference spans hold no model request
        assert summary["ignored"] > 0 and summary["params_carried"] is not None
    baseline = tmp_path / "baseline.jsonl"
    baseline.write_bytes(
        b"".join(orjson.dumps(without(e, LACKING[fmt], summary["params_carried"])) + b"\n" for e in events)
    )
    base_summary, base_report, _ = detect(baseline, "cuirass")
    assert base_summary["flagged"] > 10  # the comparison covers real flags: the lab's campaigns are caught
    assert verdicts(report) == verdicts(base_report)
    assert [sorted(c["accounts"]) for c in report["campaigns"]] == [
        sorted(c["accounts"]) for c in base_report["campaigns"]
    ]


def test_the_lacking_fields_change_nothing_else(lab: Lab, tmp_path: Path) -> None:
    """openai-jsonl carries everything the detector reads, so its verdicts equal the untouched events'."""
    path, events, _ = lab
    _, report, _ = detect(WRITERS["openai-jsonl"](events, tmp_path / "log.jsonl"), "openai-jsonl")
    _, base_report, _ = detect(path, "cuirass")
    assert verdicts(report) == verdicts(base_report)


def _lines(*objs: Any) -> bytes:
    return b"".join((o if isinstance(o, bytes) else orjson.dumps(o)) + b"\n" for o in objs)


def test_malformed_records_are_skipped_and_counted(lab: Lab, tmp_path: Path) -> None:
    """Broken lines and records of every format are skipped and counted, the rest is scored, and nothing
    ends in a traceback."""
    _, events, _ = lab
    good = events[:30]
    deep: Any = {"stringValue": "x"}
    for _ in range(40):  # deeper than the reader decodes, shallower than orjson writes
        deep = {"arrayValue": {"values": [deep]}}
    span = otel_span(good[0])
    bad_otel = [
        b"{not json",
        [1, 2, 3],
        {**span, "startTimeUnixNano": "yesterday"},
        {**span, "startTimeUnixNano": "9" * 400},  # an integer no float holds
        {**span, "attributes": [a for a in span["attributes"] if a["key"] != "user.id"]},
        {**span, "attributes": [a for a in span["attributes"] if not a["key"].endswith(".model")]},
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                "not a span",
                                {
                                    **span,
                                    "attributes": [
                                        *span["attributes"],
                                        {"key": "gen_ai.input.messages", "value": deep},
                                    ],
                                },
                            ]
                        }
                    ]
                }
            ]
        },
        {"resourceSpans": "nope"},
        b"[" * 5000 + b"]" * 5000,  # nested deeper than the JSON parser takes
    ]
    row = litellm_row(good[0])
    bad_litellm = [
        b"\xff\xfe",
        {**row, "startTime": "2026-13-45"},
        {**row, "user": "", "metadata": "[]", "api_key": None},
        {**row, "model": 7, "model_group": None},
        {**row, "messages": "{broken", "proxy_server_request": 5, "response": [1]},
    ]
    line = openai_line(good[0])
    bad_openai = [
        b'"a string"',
        {**line, "request": "hi"},
        {**line, "ts": None},
        {**line, "ts": "1e999"},
        {**line, "account": ["a"]},
        {**line, "request": {"model": "m", "messages": "not a list"}},
        {**line, "request": {"messages": []}},
    ]
    cases = {
        # (format, lines, malformed records expected, events expected); the last record of a good line is
        # still read when another record on it is broken. litellm's messages "{broken" reads as none, not an error.
        "otel": (bad_otel, 9, 1),
        "litellm": (bad_litellm, 4, 1),
        "openai-jsonl": (bad_openai, 7, 0),
    }
    for fmt, (bad, malformed, extra_events) in cases.items():
        log = WRITERS[fmt](good, tmp_path / f"good.{fmt}.jsonl")
        log.write_bytes(log.read_bytes() + _lines(*bad))
        summary, _, stderr = detect(log, fmt)
        assert (summary["malformed"], summary["events"]) == (malformed, len(good) + extra_events), (fmt, stderr)
        assert stderr.count("warning: skipped a malformed record") == malformed


def test_account_field(lab: Lab, tmp_path: Path) -> None:
    """--account-field names where a log keeps the account; without it the defaults are read."""
    _, events, _ = lab
    lines = [{**openai_line(e), "account": None, "customer": "c-" + e["account"]} for e in events[:20]]
    log = tmp_path / "custom.jsonl"
    log.write_bytes(_lines(*lines))
    summary, report, _ = detect(log, "openai-jsonl", "--account-field", "customer")
    assert summary["events"] == 20 and all(a["account"].startswith("c-") for a in report["accounts"])
    summary, _, stderr = detect(log, "openai-jsonl")
    assert summary["events"] == 0 and summary["malformed"] == 20 and "no account" in stderr
    text = cuirass("detect", "run", "--format", "openai-jsonl", "--events", str(log), "--out", str(tmp_path / "t.json"))
    assert "format openai-jsonl: lacked action (left empty, not invented)" in text.stdout
    assert "skipped 20 malformed records" in text.stdout and "further ones are only counted" in text.stderr
    run = cuirass(
        "detect", "run", "--events", str(log), "--out", str(tmp_path / "r.json"), "--account-field", "x", check=False
    )
    assert run.returncode == 2 and "--account-field is for" in run.stderr


def test_other_shapes_each_format_accepts(tmp_path: Path) -> None:
    """Shapes the lab conversion does not write: an SDK console-exporter span, a LiteLLM text completion
    whose row kept the request headers but not the messages column, a completions body with a list prompt;
    and records that hold no model request are ignored, not counted as malformed."""
    from cuirass.events.formats import Options, Reading, read

    console_span = {
        "name": "chat m",
        "context": {"trace_id": "0x1", "span_id": "0xabc"},
        "start_time": "2026-03-01T10:00:00.250000Z",
        "attributes": {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.request.max_tokens": 64,
            "app.account": "acct-9",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "What is 2 + 2?",
            "gen_ai.completion.0.content": "4",
            "gen_ai.usage.input_tokens": 7,
        },
    }
    embedding_span = {
        **console_span,
        "attributes": {**console_span["attributes"], "gen_ai.operation.name": "embeddings"},
    }
    row = {
        "request_id": "r1",
        "call_type": "atext_completion",
        "startTime": "2026-03-01 10:00:00.250",
        "model": "m",
        "user": "",
        "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "messages": {},
        "response": {"choices": [{"text": "4", "finish_reason": "stop"}]},
        "prompt_tokens": 7,
        "completion_tokens": 1,
        "proxy_server_request": {
            "body": {"model": "m", "prompt": ["Add:", "2 + 2"], "temperature": 0},
            "headers": {"User-Agent": "curl/8.5"},
        },
    }
    line = {"ts": 1772359200.25, "user": "acct-9", "request": {"model": "m", "prompt": ["Add:", "2 + 2"], "n": 2}}

    def events(fmt: str, objs: list[Any], account_field: str | None = None) -> tuple[list[Any], Reading]:
        path = tmp_path / f"{fmt}.jsonl"
        path.write_bytes(_lines(*objs))
        reading = Reading(fmt)
        return list(read(path, reading, Options(account_field))), reading

    (span_event,), reading = events("otel", [console_span, embedding_span], "app.account")
    assert reading.ignored == 1 and reading.malformed == 0
    assert (span_event.account, span_event.ts, span_event.request_id) == ("acct-9", 1772359200.25, "0xabc")
    assert span_event.messages == [{"role": "user", "content": "What is 2 + 2?"}]
    assert span_event.params == {"max_tokens": 64}
    assert span_event.response == {
        "content": "4",
        "finish_reason": None,
        "usage": {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7},
    }

    (row_event, *_), reading = events("litellm", [row, {**row, "call_type": "aembedding"}])
    assert reading.ignored == 1 and "user_agent" not in reading.lacking()
    assert (row_event.account, row_event.endpoint, row_event.user_agent) == (
        row["api_key"],
        "/v1/completions",
        "curl/8.5",
    )
    assert row_event.messages == [{"role": "user", "content": "Add:\n2 + 2"}] and row_event.params == {"temperature": 0}
    assert row_event.response == {
        "content": "4",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
    }

    (line_event,), reading = events("openai-jsonl", [line])
    assert (line_event.account, line_event.endpoint, line_event.params) == ("acct-9", "/v1/completions", {"n": 2})
    assert line_event.messages == row_event.messages and line_event.response is None
    assert reading.lacking() == [
        "account_created",
        "action",
        "ip",
        "org",
        "payment_fingerprint",
        "response",
        "user_agent",
    ]


def test_calibrate_on_a_foreign_log(lab: Lab, tmp_path: Path) -> None:
    """`detect calibrate --format` reads the same logs; the calibration records the kind of log it holds for,
    and gives the threshold that calibrating on the equivalent Cuirass events gives."""
    _, events, accounts = lab
    benign = [e for e in events if e["account"] in accounts]
    log = WRITERS["litellm"](benign, tmp_path / "benign.litellm.jsonl")
    cal = tmp_path / "cal.json"
    run = cuirass(
        "detect",
        "calibrate",
        "--format",
        "litellm",
        "--benign",
        str(log),
        "--fpr",
        "0.05",
        "--out",
        str(cal),
        "--no-progress",
    )
    assert "format litellm: lacked" in run.stdout
    calibration = json.loads(cal.read_text())
    assert calibration["log"]["format"] == "litellm" and calibration["log"]["lacking"] == LACKING["litellm"]
    same = tmp_path / "benign.jsonl"
    same.write_bytes(b"".join(orjson.dumps(without(e, LACKING["litellm"], None)) + b"\n" for e in benign))
    cuirass(
        "detect",
        "calibrate",
        "--benign",
        str(same),
        "--fpr",
        "0.05",
        "--out",
        str(tmp_path / "c2.json"),
        "--no-progress",
    )
    expected = json.loads((tmp_path / "c2.json").read_text())
    assert (calibration["threshold"], calibration["n_accounts"]) == (expected["threshold"], expected["n_accounts"])
