"""`canary`: a keyed fraction of responses carry a cohort fact, recorded in the ledger; decoys never do."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from cuirass.marks.canary import CanaryGenerator
from cuirass.marks.canary_ledger import CanaryLedger
from cuirass.respond.base import DEFENSES, DefenseContext
from cuirass.respond.defenses.canary import Canary
from cuirass.storage.migrate import make_engine

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
KEY = bytes(range(32))
ANSWER = "Water boils at 100 degrees at sea level. Pressure changes that.\n\nAt altitude it boils lower."


def ctx(prompt: str, key: bytes = KEY, cohort: str = "c003", account: str = "acct-1") -> DefenseContext:
    return DefenseContext(
        account=account, cohort=cohort, prompt=prompt, endpoint="/v1/chat/completions", model="m", key=key
    )


def test_registered_under_its_name() -> None:
    assert DEFENSES["canary"] is Canary


def test_rate_is_honoured_and_deterministic() -> None:
    c = Canary(rate=0.05)
    planted = [c.transform(ANSWER, ctx(f"prompt {i}")) != ANSWER for i in range(4000)]
    assert 0.04 <= sum(planted) / len(planted) <= 0.06
    again = [Canary(rate=0.05).transform(ANSWER, ctx(f"prompt {i}")) != ANSWER for i in range(4000)]
    assert planted == again
    assert Canary(rate=0.0).transform(ANSWER, ctx("x")) == ANSWER


def test_planted_fact_is_a_natural_aside_and_is_queued() -> None:
    c = Canary(rate=1.0)
    out = c.transform(ANSWER, ctx("why does water boil?"))
    (record,) = c.drain()
    assert record.planted_text in out
    assert out.startswith("Water boils at 100 degrees at sea level. Pressure changes that. ")
    assert out.replace(" " + record.planted_text, "") == ANSWER
    assert record.cohort == "c003" and record.account == "acct-1"
    assert record.prompt_hash.startswith("sha256:") and "water" not in record.prompt_hash
    assert record.probe.endswith("?") and record.answer
    assert c.drain() == []


def test_cohorts_get_different_facts() -> None:
    a = Canary(rate=1.0).transform(ANSWER, ctx("q", key=b"a" * 32, cohort="c001"))
    b = Canary(rate=1.0).transform(ANSWER, ctx("q", key=b"b" * 32, cohort="c002"))
    assert a != b


def test_ledger_records_rows(tmp_path: Path) -> None:
    ledger = CanaryLedger(make_engine(f"sqlite:///{tmp_path / 'c.db'}"))
    c = Canary(rate=0.5, pool=4)
    for i in range(40):
        c.transform(ANSWER, ctx(f"prompt {i}", account=f"acct-{i % 3}"))
    records = c.drain()
    assert ledger.record(records) == len(records) > 5
    rows = ledger.rows(cohort="c003")
    assert rows == records
    assert set(ledger.planted_ids()) <= {f"c003:{i}" for i in range(4)}
    assert sum(ledger.planted_ids().values()) == len(records)
    assert ledger.rows(account="acct-1") == [r for r in records if r.account == "acct-1"]


def test_flush_writes_the_queue_to_the_ledger_and_keeps_it_on_failure(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    c = Canary(rate=1.0)
    for i in range(3):
        c.transform(ANSWER, ctx(f"prompt {i}"))
    queued = list(c.pending)

    def down(self, rows):  # type: ignore[no-untyped-def]
        raise OSError("store unavailable")

    with monkeypatch.context() as m:
        m.setattr(CanaryLedger, "record", down)
        with pytest.raises(OSError):
            c.flush(engine)
    assert list(c.pending) == queued  # nothing lost, order kept
    assert c.flush(engine) == 3 and not c.pending
    assert CanaryLedger(engine).rows() == queued
    assert c.flush(engine) == 0


def test_decoys_share_the_generator_but_are_never_planted() -> None:
    c = Canary(rate=1.0, pool=16)
    gen = CanaryGenerator(KEY, "c003")
    planted_ids = set()
    for i in range(300):
        c.transform(ANSWER, ctx(f"prompt {i}"))
    planted_ids = {r.canary_id for r in c.drain()}
    decoys = gen.decoys(400)
    assert planted_ids <= {f.canary_id for f in gen.planted(16)}
    assert not planted_ids & {d.canary_id for d in decoys}
    assert all(d.decoy for d in decoys) and not any(f.decoy for f in gen.planted(16))
    planted_texts = {f.text for f in gen.planted(16)}
    assert not planted_texts & {d.text for d in decoys}
    kinds = collections.Counter(d.kind for d in decoys)  # same templates, about equally often
    assert set(kinds) == {"constant", "term", "attribution", "place"} and min(kinds.values()) > 60
    assert gen.fact(3) == CanaryGenerator(KEY, "c003").fact(3)  # an audit regenerates the same facts


def test_final_answer_and_code_are_left_alone() -> None:
    c = Canary(rate=1.0)
    rows = [json.loads(line) for line in (DATA / "gsm8k_test.jsonl").read_text().splitlines()[:50]]
    for row in rows:
        out = c.transform(row["answer"], ctx(row["question"]))
        assert out.splitlines()[-1] == row["answer"].splitlines()[-1]
        assert out != row["answer"]
    code = "```python\nprint('hi')\n```"
    assert c.transform(code, ctx("code")) == code  # nowhere natural to put it: nothing planted


def test_the_key_never_appears() -> None:
    c = Canary(rate=1.0)
    out = c.transform(ANSWER, ctx("q"))
    (record,) = c.drain()
    blob = out + repr(record) + repr(CanaryGenerator(KEY, "c003")) + json.dumps(record.to_row())
    assert KEY.hex() not in blob and repr(KEY) not in blob


def test_on_plant_callback_replaces_the_queue() -> None:
    seen = []
    c = Canary(rate=1.0, on_plant=seen.append)
    c.transform(ANSWER, ctx("q"))
    assert len(seen) == 1 and c.drain() == []


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        Canary(rate=1.5)
    with pytest.raises(ValueError):
        Canary(pool=0)
