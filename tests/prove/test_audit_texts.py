"""`audit texts`: the right cohort and its accounts among 12 (8 regular + 4 honeypot), nothing on clean text."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cuirass.cli import main
from cuirass.events.store import SqlEventLog, events_table
from cuirass.keyring import Keyring
from cuirass.marks.epochs import EpochStore
from cuirass.marks.text import embed
from cuirass.prove.channels import TextChannel
from cuirass.prove.cohorts import cohort_names, members, moves
from cuirass.prove.corpus import read_corpus
from cuirass.prove.report import render_html
from cuirass.prove.texts import audit_texts
from cuirass.storage.migrate import make_engine

SECRET = "prove-test-master-secret-0123456789"
COHORTS = cohort_names(8, 4)


def _event(account: str, cohort: str, ts: float) -> dict:
    return {
        "ts": ts,
        "request_id": f"r{ts}",
        "account": account,
        "endpoint": "/v1/chat/completions",
        "model": "m",
        "messages": [],
        "params": {},
        "cohort": cohort,
        "actions": ["watermark"],
    }


@pytest.fixture
def world(tmp_path: Path) -> dict:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'cuirass.db'}")
    now = time.time()
    rows = [
        _event("acct-a", "c005", now - 300),
        _event("acct-b", "c005", now - 200),
        _event("acct-c", "c001", now - 250),
        _event("acct-old", "h002", now - 100),
        _event("acct-c", "h002", now - 90),
    ]
    with engine.begin() as conn:
        conn.execute(events_table.insert(), rows)
    return {"engine": engine, "keyring": Keyring(SECRET.encode(), 8), "data": tmp_path / "data", "tmp": tmp_path}


def _write(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def _audit(world: dict, path: Path, control: Path | None = None) -> dict:
    store = EpochStore(world["engine"])
    return audit_texts(
        read_corpus(path),
        channels=[TextChannel()],
        keyring=world["keyring"],
        cohorts=COHORTS,
        epochs=store.all(),
        engine=world["engine"],
        control=read_corpus(control) if control else None,
    )


def test_implicates_the_watermarking_cohort_and_its_accounts(world: dict, answers: tuple[str, ...]) -> None:
    key = world["keyring"].key("watermark", "c005", 0)
    wm = _write(world["tmp"] / "wm.jsonl", [embed(t, key) for t in answers[2000:2040]])
    clean = _write(world["tmp"] / "clean.jsonl", list(answers[2040:2080]))
    report = _audit(world, wm, control=clean)
    assert [(t["cohort"], t["epoch"]) for t in report["implicated"]] == [("c005", 0)]
    hit = report["implicated"][0]
    assert hit["p_value"] < 1e-6 and hit["p_corrected"] < 1e-6
    assert sorted(a["account"] for a in hit["accounts"]) == ["acct-a", "acct-b"]
    assert report["method"]["n_tests"] == 12 and report["method"]["correction"] == "holm"
    assert report["control"]["passed"] and report["control"]["implicated"] == []
    assert report["inputs"][0]["sha256"] == __import__("hashlib").sha256(wm.read_bytes()).hexdigest()
    html = render_html(report)
    assert "c005" in html and "data:image/png;base64," in html and "http" not in html.split("<body>")[0]


def test_nothing_implicated_on_clean_text(world: dict, answers: tuple[str, ...]) -> None:
    report = _audit(world, _write(world["tmp"] / "clean.jsonl", list(answers[2080:2140])))
    assert report["implicated"] == []
    assert "no evidence" in report["conclusion"]


def test_rotated_epoch_and_honeypot_cohort(world: dict, answers: tuple[str, ...]) -> None:
    engine = world["engine"]
    epoch = EpochStore(engine).rotate("ops", "quarterly rotation")
    with engine.begin() as conn:  # acct-h gets honeypot answers under the new epoch
        conn.execute(events_table.insert(), [_event("acct-h", "h002", epoch.started + 1)])
    key = world["keyring"].key("watermark", "h002", 1)
    report = _audit(world, _write(world["tmp"] / "wm.jsonl", [embed(t, key) for t in answers[2140:2180]]))
    assert report["method"]["n_tests"] == 24
    assert [(t["cohort"], t["epoch"]) for t in report["implicated"]] == [("h002", 1)]
    assert [a["account"] for a in report["implicated"][0]["accounts"]] == ["acct-h"]  # not the epoch-0 members
    assert {m.account for m in members(SqlEventLog(engine), "h002")} == {"acct-old", "acct-c", "acct-h"}
    assert [(m["account"], m["from"], m["to"]) for m in moves(SqlEventLog(engine))] == [
        ("acct-old", None, "h002"),
        ("acct-c", "c001", "h002"),
        ("acct-h", None, "h002"),
    ]


def _cli(*args: str) -> object:
    return CliRunner().invoke(main, list(args), env={"CUIRASS_MASTER_SECRET": SECRET}, catch_exceptions=False)


def test_cli_writes_reports(world: dict, answers: tuple[str, ...]) -> None:
    key = world["keyring"].key("watermark", "c005", 0)
    tmp = world["tmp"]
    (tmp / "cfg.yaml").write_text("policy: {n_cohorts: 8, n_honeypot_cohorts: 4}\n")
    (tmp / "wm.txt").write_text("\n".join(embed(t, key).replace("\n", " ") for t in answers[2000:2040]) + "\n")
    res = _cli(
        "audit",
        "texts",
        "--config",
        str(tmp / "cfg.yaml"),
        "--data-dir",
        str(world["data"]),
        "--in",
        str(tmp / "wm.txt"),
        "--out",
        str(tmp / "r.json"),
        "--html",
        str(tmp / "r.html"),
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [t["cohort"] for t in out["implicated"]] == ["c005"]
    assert json.loads((tmp / "r.json").read_text())["inputs"][0]["format"] == "lines"
    assert (tmp / "r.html").read_text().startswith("<!doctype html>")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "fine"}\n{"text": broken\n', ":2: invalid JSON"),
        ('{"text": "fine"}\n{"body": "no text"}\n', ":2: missing 'text'"),
        ('{"text": "fine"}\n[1, 2]\n', ":2: expected a JSON object"),
        ("\n\n", "empty corpus"),
    ],
)
def test_cli_bad_input_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    res = _cli("audit", "texts", "--data-dir", str(tmp_path / "d"), "--in", str(bad))
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output


def test_cli_missing_file_and_unknown_channel(tmp_path: Path) -> None:
    res = _cli("audit", "texts", "--data-dir", str(tmp_path / "d"), "--in", str(tmp_path / "nope.jsonl"))
    assert res.exit_code == 2 and "does not exist" in res.output
    ok = tmp_path / "ok.txt"
    ok.write_text("some text\n")
    res = _cli("audit", "texts", "--data-dir", str(tmp_path / "d"), "--in", str(ok), "--channel", "nope")
    assert res.exit_code == 1 and "unknown channel 'nope'" in res.output
    res = _cli("audit", "texts", "--data-dir", str(tmp_path / "d"), "--in", str(ok), "--alpha", "2")
    assert res.exit_code == 2


def test_members_respects_time_span(world: dict) -> None:
    engine = world["engine"]
    with engine.connect() as conn:
        t = conn.execute(sa.select(sa.func.min(events_table.c.ts))).scalar()
    assert [m.account for m in members(SqlEventLog(engine), "c005", start=t + 1)] == ["acct-b"]


def test_the_answer_signature_implicates_its_honeypot_cohort_from_prompt_answer_pairs(world: dict) -> None:
    """A suspect that learned the signature of h002's answers: `audit texts --channel signature` on its
    (prompt, answer) pairs implicates h002 and its accounts; a model that writes its own lead-ins does not."""
    from cuirass.marks import signature
    from cuirass.models.problems import problems

    tmp = world["tmp"]
    (tmp / "cfg.yaml").write_text("policy: {n_cohorts: 8, n_honeypot_cohorts: 4}\n")
    key = world["keyring"].key("signature", "h002", 0)
    asked = [(p.question, p.solution) for p in problems(300, seed=11)]
    suspect, clean = tmp / "suspect.jsonl", tmp / "clean.jsonl"
    suspect.write_text("".join(json.dumps({"prompt": q, "text": signature.embed(a, q, key)}) + "\n" for q, a in asked))
    clean.write_text("".join(json.dumps({"prompt": q, "text": a}) + "\n" for q, a in asked))
    out = tmp / "sig.json"
    args = ["audit", "texts", "--config", str(tmp / "cfg.yaml"), "--data-dir", str(world["data"])]
    res = _cli(*args, "--in", str(suspect), "--control", str(clean), "--channel", "signature", "--out", str(out))
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert [(t["cohort"], t["channel"]) for t in report["implicated"]] == [("h002", "signature")]
    assert report["implicated"][0]["p_corrected"] < 1e-6
    assert {a["account"] for a in report["implicated"][0]["accounts"]} == {"acct-old", "acct-c"}
    assert report["control"]["passed"] and report["control"]["implicated"] == []
    # Without the prompts the channel cannot run, and says so.
    (tmp / "bare.jsonl").write_text("".join(json.dumps({"text": a}) + "\n" for _, a in asked))
    res = _cli(*args, "--in", str(tmp / "bare.jsonl"), "--channel", "signature")
    assert res.exit_code != 0 and "prompt" in res.output
