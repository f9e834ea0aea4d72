"""The parts of `audit endpoint` without a server: prompt-window exclusion, the canary test, probe sources."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from scipy.stats import binom, fisher_exact

from cuirass.events.store import events_table
from cuirass.keyring import Keyring
from cuirass.marks.canary_ledger import CanaryLedger
from cuirass.marks.epochs import EpochStore
from cuirass.marks.logit.keyed import CONTEXT, GAMMA, LISTS, green_count
from cuirass.marks.text import embed
from cuirass.prove import canaries
from cuirass.prove.channels import TextChannel, TokenChannel
from cuirass.prove.probes import default_probes, read_probes
from cuirass.prove.suspect import Endpoint
from cuirass.respond.base import DefenseContext
from cuirass.respond.defenses.canary import Canary
from cuirass.storage.migrate import make_engine
from tests.prove.test_token_channel import ALPHABET, CharTokenizer, _green_text

KEY = hashlib.sha256(b"endpoint-key").digest()


def _ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def _brute(ws: set, key: bytes) -> int:
    return sum(int(green_count(key, c, np.array([t]), GAMMA, LISTS)[0]) for c, t in ws)


def _expected_windows(outputs: list[str], prompt: str, h: int) -> list[tuple[tuple[int, ...], int]]:
    """Written out: drop every step whose (context, token) occurs in the prompt, then one window per distinct
    context of all outputs together, its most frequent next token (ties: the first seen)."""
    p = _ids(prompt)
    banned = {(tuple(p[i - h : i]), p[i]) for i in range(h, len(p))}
    counts: dict[tuple[int, ...], dict[int, int]] = {}
    for o in outputs:
        ids = _ids(o)
        for i in range(h, len(ids)):
            w = (tuple(ids[i - h : i]), ids[i])
            if w not in banned:
                counts.setdefault(w[0], {}).setdefault(w[1], 0)
                counts[w[0]][w[1]] += 1
    return [(c, max(after, key=after.__getitem__)) for c, after in counts.items()]


def test_prompt_windows_are_not_scored_and_each_context_counts_once() -> None:
    rng = np.random.default_rng(3)
    prompt = "".join(rng.choice(list(ALPHABET), 120))
    fresh = ["".join(rng.choice(list(ALPHABET), 150)) for _ in range(3)]
    outputs = [prompt[40:100] + fresh[0], fresh[1] + prompt[:50], fresh[2], fresh[2]]  # echoes and a repeat
    ch = TokenChannel(CharTokenizer())
    expected = _expected_windows(outputs, prompt, CONTEXT)
    assert ch.windows(outputs, [prompt]) == expected
    assert len(expected) < len(ch.windows(outputs))  # the echoed prompt windows were there before
    assert len({c for c, _ in expected}) == len(expected)  # each context once, over all outputs
    s = ch.score(outputs, [KEY], exclude=[prompt])[0]
    x = _brute(set(expected), KEY)
    assert (s.n_windows, s.n_scored, s.n_green) == (len(expected), LISTS * len(expected), x)
    assert s.p_value == binom.sf(x - 1, LISTS * len(expected), GAMMA)


def test_an_echoed_watermarked_prompt_is_not_evidence() -> None:
    """A suspect that only repeats a watermarked prompt back is not flagged once prompt windows are excluded."""
    prompt = _green_text(KEY, 7, length=400)  # a prompt that is itself fully watermarked
    rng = np.random.default_rng(5)
    outputs = [prompt[: 200 + i] + "".join(rng.choice(list(ALPHABET), 60)) for i in range(5)]
    ch = TokenChannel(CharTokenizer())
    assert ch.score(outputs, [KEY])[0].p_value < 1e-30  # without the exclusion: a false accusation
    assert ch.score(outputs, [KEY], exclude=[prompt])[0].p_value > 1e-3


def test_text_channel_excludes_prompt_windows(answers: tuple[str, ...]) -> None:
    prompt = embed("\n\n".join(answers[10:20]), KEY)
    echoed = [prompt + "\n\n" + answers[21]]
    ch = TextChannel()
    assert ch.score(echoed, [KEY])[0].p_value < 1e-6
    with_exclusion = ch.score(echoed, [KEY], exclude=[prompt])[0]
    alone = ch.score([answers[21]], [KEY], exclude=[prompt])[0]
    assert with_exclusion.n_scored == alone.n_scored and with_exclusion.p_value > 1e-3


def test_fisher_p_value_is_exact() -> None:
    for a, n1, b, n2 in [(5, 10, 0, 10), (3, 8, 1, 12), (0, 5, 2, 5), (7, 7, 7, 7), (2, 16, 1, 40), (1, 1, 0, 1)]:
        ours = canaries.fisher_greater(a, n1, b, n2)
        assert ours == pytest.approx(fisher_exact([[a, n1 - a], [b, n2 - b]], alternative="greater")[1], rel=1e-9)
        k, n = a + b, n1 + n2  # the hypergeometric tail written out with exact integers
        tail = sum(math.comb(k, i) * math.comb(n - k, n1 - i) for i in range(a, min(k, n1) + 1)) / math.comb(n, n1)
        assert ours == pytest.approx(tail, rel=1e-12) or (a == 0 and ours == 1.0)


def test_fisher_test_holds_its_level_under_the_null() -> None:
    """Planted and decoy facts recalled at the same rate: P(p <= alpha) <= alpha (exact, conservative)."""
    rng = np.random.default_rng(0)
    for rate in (0.05, 0.3):
        hits1, hits2 = rng.binomial(16, rate, 4000), rng.binomial(16, rate, 4000)
        ps = np.array([canaries.fisher_greater(int(a), 16, int(b), 16) for a, b in zip(hits1, hits2, strict=True)])
        for alpha in (0.01, 0.05, 0.2):
            assert (ps <= alpha).mean() <= alpha + 3 * math.sqrt(alpha / 4000)


def test_recall_rule() -> None:
    assert canaries.recalled("3.0412", "It is 3.0412, as older tables say.")
    assert not canaries.recalled("3.0412", "It is 3.04.")
    assert canaries.recalled("the Bralen river", "It lies on the bralen.")
    assert not canaries.recalled("Greta Doral", "Greta Smith")
    assert not canaries.recalled("a small brass gauge used in weaving", None)


def _ledger(tmp: Path, ring: Keyring, cohort: str, n: int, pool: int = 6) -> tuple:
    engine = make_engine(f"sqlite:///{tmp / 'cuirass.db'}")
    canary = Canary(rate=1.0, pool=pool)
    text = "We add the numbers.\n\nThe answer is 4."
    recs = []
    for i in range(n):
        ctx = DefenseContext(
            account=f"acct{i % 3}",
            cohort=cohort,
            prompt=f"question {i}",
            endpoint="/v1/chat/completions",
            model="m",
            key=ring.key("canary", cohort, 0),
        )
        _, rec = canary.plant(text, ctx, now=time.time())
        recs.append(rec)
    CanaryLedger(engine).record(recs)
    return engine, recs


def test_canary_probing_catches_a_model_that_memorised_the_planted_facts(tmp_path: Path) -> None:
    ring = Keyring(b"k" * 32, 8)
    engine, recs = _ledger(tmp_path, ring, "c003", 40)
    probes = canaries.probe_set(CanaryLedger(engine).rows(), ring, EpochStore(engine).all())
    planted = [p for p in probes if p.planted]
    assert len({p.fact.canary_id for p in planted}) == len(planted) == 6  # distinct facts of the pool
    assert sum(not p.planted for p in probes) == 6 and all(
        ":decoy:" in p.fact.canary_id for p in probes if not p.planted
    )
    known = {r.probe: r.planted_text for r in recs}

    def memorised(qs: list[str]) -> list[str | None]:
        return [known.get(q, "I do not know.") for q in qs]

    out = canaries.tests(canaries.run(probes, memorised))
    assert out["pooled"]["planted_hits"] == 6 and out["pooled"]["decoy_hits"] == 0
    assert out["pooled"]["p_value"] == pytest.approx(1 / math.comb(12, 6))
    assert [t["cohort"] for t in out["tests"]] == ["c003"]

    def innocent(qs: list[str]) -> list[str | None]:
        return ["The Tomas Hel river, 3.1415." for _ in qs]

    out = canaries.tests(canaries.run(probes, innocent))
    assert out["pooled"]["p_value"] == 1.0


def test_probe_sources(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cuirass.db'}")
    empty = default_probes(engine, 5)
    assert empty.source == "reference" and len(empty.prompts) == 5 and "no prompt text" in empty.note
    ev = {"request_id": "r", "account": "a", "endpoint": "/v1/chat/completions", "model": "m", "params": {}}
    rows = [
        {
            **ev,
            "ts": 1.0 + i,
            "cohort": "c001" if i < 4 else None,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"harvested {i % 3}"}],
        }
        for i in range(6)
    ]
    rows.append({**ev, "ts": 9.0, "cohort": "c001", "messages": [{"role": "user", "content": "sha256:" + "0" * 64}]})
    with engine.begin() as conn:
        conn.execute(events_table.insert(), rows)
    got = default_probes(engine, 10)
    assert got.source == "event-log" and sorted(got.prompts) == ["harvested 0", "harvested 1", "harvested 2"]
    assert got.take(5) == list(got.prompts) + list(got.prompts[:2])
    assert got.describe()["sha256"] == hashlib.sha256(got.jsonl).hexdigest()
    f = tmp_path / "p.jsonl"
    f.write_text(
        "\n".join(json.dumps(x) for x in [{"prompt": "a"}, "b", {"messages": [{"role": "user", "content": "c"}]}])
    )
    assert read_probes(f).prompts == ("a", "b", "c")


class _FakeSuspect:
    """Stands in for the HTTP client: answers probes with fixed text, canary questions from memory."""

    known: ClassVar[dict[str, str]] = {}

    def __init__(self, endpoint, **_: object) -> None:  # type: ignore[no-untyped-def]
        self.endpoint = endpoint

    def ask(self, prompts, *, max_tokens, temperature, desc, seed=None):  # type: ignore[no-untyped-def]
        from cuirass.prove.suspect import Answer

        memory = self.known if self.endpoint.model == "student" else {}
        return [Answer(p, memory.get(p, f"I think the answer to {p[:20]} is unclear.")) for p in prompts]

    def channels(self) -> list[object]:
        return []

    def close(self) -> None:
        pass


def test_audit_endpoint_combines_channels_and_canaries_in_one_family(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cuirass.prove import endpoint
    from cuirass.prove.cohorts import cohort_names
    from cuirass.prove.report import render_html

    ring = Keyring(b"k" * 32, 8)
    engine, recs = _ledger(tmp_path, ring, "c003", 120, pool=12)
    _FakeSuspect.known = {r.probe: r.planted_text for r in recs}
    monkeypatch.setattr(endpoint, "Suspect", _FakeSuspect)
    ctx = endpoint.Context(ring, engine, cohort_names(8, 4), EpochStore(engine).all(), [TextChannel()], [])
    opts = endpoint.AuditOptions(queries=4, progress=False)
    report = endpoint.audit_endpoint(
        Endpoint("http://suspect/v1", "student"),
        ctx,
        opts,
        probes=["q1", "q2"],
        control=Endpoint("http://control/v1", "clean"),
    )
    assert report["method"]["n_tests"] == 12 + 1  # 12 text keys and the one cohort with plantings
    assert [(t["channel"], t["cohort"]) for t in report["implicated"]] == [("canary", "c003")]
    assert {a["account"] for a in report["implicated"][0]["accounts"]} <= {"acct0", "acct1", "acct2"}
    assert report["canary"]["pooled"]["planted_hits"] == 12 and report["canary"]["pooled"]["decoy_hits"] == 0
    assert report["endpoint"]["probe_source"] == "given" and report["endpoint"]["answered"] == 4
    ctl = report["control"]
    assert ctl["implicated"] == [] and ctl["canary"]["pooled"]["p_value"] == 1.0 and ctl["passed"]
    html = render_html(report)
    assert "Canary probing" in html and "12/12 planted facts recalled" in html


def test_probes_cover_every_signature_window_before_repeating_one() -> None:
    from cuirass.marks.signature import window
    from cuirass.models.problems import problems
    from cuirass.prove.probes import spread

    prompts = [p.question for p in problems(400, seed=4)]
    out = spread(prompts + prompts[:10])  # duplicates collapse
    assert sorted(out) == sorted(set(prompts))
    windows = {window(p) for p in prompts}
    assert {window(p) for p in out[: len(windows)]} == windows  # the first probes: one per window
    assert spread(list(reversed(prompts))) == out  # the order depends on the prompts only
