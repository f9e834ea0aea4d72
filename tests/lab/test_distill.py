"""`cuirass lab distill --quick`: one real run (gateways, HTTP harvests, students, audit), then the direction
of every effect that is robust at this size. The numbers themselves are the mid and full runs' business."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = [pytest.mark.heavy, pytest.mark.timeout(3600)]  # the quick run: minutes on 2 idle cores, more when busy

from cuirass.lab.distill import conditions, workload  # noqa: E402
from cuirass.lab.distill.config import DistillConfig  # noqa: E402
from cuirass.lab.distill.stats import value_ratio, value_ratio_interval, wilson  # noqa: E402
from cuirass.models.problems import CASUAL, ELICIT  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("distill")
    proc = subprocess.run(
        [sys.executable, "-m", "cuirass", "lab", "distill", "--quick", "--out", str(out), "--no-progress", "--json"],
        capture_output=True,
        text=True,
        timeout=3400,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout)


def test_workloads_are_deterministic_and_share_prompts() -> None:
    cfg = DistillConfig.quick()
    assert workload.benign(cfg) == workload.benign(cfg)
    a, b = workload.campaign(cfg, False, "a"), workload.campaign(cfg, False, "b")
    assert [(r.prompt, r.seed) for r in a] == [(r.prompt, r.seed) for r in b]  # same budget and seeds
    assert len({r.account for r in a}) == cfg.campaign_accounts
    e = workload.campaign(cfg, True, "e")
    harvest = [r for r in e if r.harvest]
    assert [r.problem for r in harvest] == [r.problem for r in a]  # same problems, paraphrased
    assert len({r.account for r in e}) > cfg.campaign_accounts
    # the bulk campaign elicits worked solutions; benign users ask bare or casually, each from its own /24
    assert all(any(r.prompt == f.format(q=r.problem.question) for f in ELICIT) for r in a)
    benign = workload.benign(dataclasses.replace(cfg, benign_users=20, benign_queries=5))
    assert all(
        r.prompt == r.problem.question or any(r.prompt == f.format(q=r.problem.question) for f in CASUAL)
        for r in benign
    )
    assert 0 < sum(r.prompt != r.problem.question for r in benign) < len(benign)
    nets = {r.account: r.ip.rsplit(".", 1)[0] for r in benign}
    assert len(set(nets.values())) == len(nets)


def test_jsonl_task_in_gsm8k_format(tmp_path: Path) -> None:
    import itertools

    from cuirass.lab.distill import tasks
    from cuirass.lab.reference.evaluate import final_answer_correct

    for split, n in (("train", 5), ("test", 3)):
        (tmp_path / f"gsm8k_{split}.jsonl").write_text(
            "".join(
                json.dumps(
                    {
                        "question": f"{split} {i}: what is {i} + 1,000?",
                        "answer": f"{i} + 1000 = {i + 1000}\n#### {i + 1000:,}",
                    }
                )
                + "\n"
                for i in range(n)
            )
        )
    task = tasks.load(f"gsm8k:{tmp_path}")
    items = list(itertools.islice(task.stream(0, "test"), 6))
    assert {p.question for p in items} == {f"test {i}: what is {i} + 1,000?" for i in range(3)}  # cycles
    assert all(final_answer_correct(p.solution, p.answer) for p in items)
    files = f"{tmp_path}/gsm8k_train.jsonl,{tmp_path}/gsm8k_test.jsonl"
    cfg = dataclasses.replace(DistillConfig.quick(), task=f"jsonl:{files}")
    assert all(
        r.problem.question.startswith("train") and r.problem.question in r.prompt
        for r in workload.campaign(cfg, False, "a")
    )
    assert all(r.problem.question.startswith("test") and r.problem.question in r.prompt for r in workload.benign(cfg))
    with pytest.raises(ValueError):
        tasks.load("nope")


def test_conditions_and_policy() -> None:
    conds, _skipped = conditions.build(("C:decoy", "D"))
    assert [c.name for c in conds] == ["A", "B", "C:decoy", "D"]  # A and B come with what needs them
    policy = conditions.policy_for("plain", conds)
    assert policy["orgs"] == {"cond-c-decoy": {"bands": [], "default_actions": ["decoy"]}}
    assert policy["bands"] == [] and policy["default_actions"] == []
    with pytest.raises(ValueError):
        conditions.build(("C:nope",))


def test_stats() -> None:
    lo, hi = wilson(0, 10)
    assert lo == 0 and 0.2 < hi < 0.35
    assert value_ratio(0.3, 0.0, 0.6) == pytest.approx(0.5)
    assert value_ratio(4.0, 6.0, 2.0) == pytest.approx(0.5)  # loss: lower is better, same formula
    assert value_ratio(0.1, 0.0, 0.0) is None


def test_value_ratio_interval_is_a_paired_bootstrap() -> None:
    def st(outcomes: str) -> dict[str, Any]:
        return {"outcomes": outcomes}

    a, none = st("1" * 300 + "0" * 700), st("0" * 1000)
    assert value_ratio_interval(a, none, a) == [1.0, 1.0]  # the same answers as A's student: exactly A's value
    assert value_ratio_interval(none, none, a) == [0.0, 0.0]
    half = st("10" * 150 + "0" * 700)  # right on half of the problems A's student gets right
    low, high = value_ratio_interval(half, none, a) or [0.0, 0.0]
    assert 0.4 < low < 0.5 < high < 0.6
    # As accurate, but on other problems: the pairing sees less agreement, so the interval is wider.
    elsewhere = value_ratio_interval(st("0" * 300 + "1" * 150 + "0" * 550), none, a) or [0.0, 0.0]
    assert elsewhere[0] < low < 0.5 < high < elsewhere[1]
    assert value_ratio_interval(none, none, none) is None  # A gained nothing: no ratio
    assert value_ratio_interval({"accuracy": 0.3}, none, a) is None  # an old result without outcomes


def test_student_from_a_hugging_face_config(tmp_path: Path) -> None:
    """A student described by a config file (here a tiny GPT-2, another family) trains with the lab's loop."""

    from transformers import GPT2Config

    from cuirass.lab.distill import student
    from cuirass.lab.distill.config import StudentSpec
    from cuirass.lab.reference import evaluate as ev
    from cuirass.models.problems import problems

    GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=512).save_pretrained(tmp_path / "cfg")
    cfg = dataclasses.replace(
        DistillConfig.quick(),
        student=StudentSpec(config_path=str(tmp_path / "cfg")),
        train_steps=3,
        batch_size=2,
        eval_n=2,
        max_tokens=8,
    )
    _, tokenizer = ev.load("src/cuirass/models/reference")
    data = [student.Example(p.question, p.solution) for p in problems(4)]
    model = student.train(data, tokenizer, cfg, tmp_path / "student")
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert (tmp_path / "student" / "config.json").is_file()
    result = student.evaluate(model, tokenizer, cfg)
    assert result["n"] == 2 and result["heldout_loss"] > 0
    assert len(student.examples([], filter_answers=True)) == 0


def test_quick_run_writes_the_report(quick: tuple[Path, dict[str, Any]]) -> None:
    out, _results = quick
    for name in ("results.json", "summary.md", "harvest.jsonl", "accuracy.png", "audit.png"):
        assert (out / name).stat().st_size > 0
    assert "| **A**" in (out / "summary.md").read_text()


def test_students_learn_from_the_bare_teacher(quick: tuple[Path, dict[str, Any]]) -> None:
    _, r = quick
    a, untrained = r["conditions"]["A"]["student"], r["untrained"]
    assert a["heldout_loss"] < untrained["heldout_loss"] - 0.3
    assert a["accuracy"] >= untrained["accuracy"]


def test_always_on_defenses_change_what_the_campaign_gets(quick: tuple[Path, dict[str, Any]]) -> None:
    _, r = quick
    c = r["conditions"]
    assert c["A"]["data"]["identical_to_teacher"] == 1.0
    assert c["A"]["exposure"]["served_before_detection"] == 1.0
    for name in ("C:decoy", "C:perturb", "C:logit_watermark"):
        assert c[name]["data"]["identical_to_teacher"] < 0.5, name
    for name in ("C:decoy", "C:perturb", "C:logit_watermark", "C:strip_reasoning"):
        assert c[name]["exposure"]["served_before_detection"] == 0.0, name  # every campaign response defended
    assert c["C:decoy"]["data"]["answer_correct"] < c["A"]["data"]["answer_correct"]
    # The gateways serve the reasoning model with its traces apart (reasoning_content): the bare teacher sends a
    # trace with every answer, strip_reasoning none, and the decoy keeps the teacher's shape (a trace, an answer).
    assert c["A"]["data"]["with_trace"] == 1.0
    assert c["C:strip_reasoning"]["data"]["with_trace"] == 0.0
    assert c["C:strip_reasoning"]["data"]["answer_correct"] > 0
    assert c["C:decoy"]["data"]["with_trace"] == 1.0


def test_the_signature_reaches_the_harvest_through_the_gateway_and_keeps_every_answer(
    quick: tuple[Path, dict[str, Any]],
) -> None:
    _, r = quick
    c = r["conditions"]
    signed = c["C:signature"]["data"]
    assert signed["signature_mark"]["p"] < 1e-6  # every harvested answer opens with its cohort's keyed lead-in
    assert signed["signature_mark"]["hits"] == signed["signature_mark"]["n_read"] == signed["harvested"]
    assert signed["answer_correct"] == c["A"]["data"]["answer_correct"]  # the answers themselves are kept
    for name in ("C:logit_watermark", "C:perturb", "C:strip_reasoning"):  # unsigned answers, the same keys
        assert c[name]["data"]["signature_mark"]["p"] > 1e-3, name


def test_answers_only_students_stand_beside_the_traces_students(quick: tuple[Path, dict[str, Any]]) -> None:
    _, r = quick
    c = r["conditions"]
    a = c["A"]["answers_only"]
    assert a["same_as_traces"] is False and a["trained_on"] == c["A"]["data"]["trained_on"]
    assert a["student"]["n"] == c["A"]["student"]["n"] and "value_ratio" in a
    # A harvest whose traces were all stripped is the answers-only data already: no second student.
    stripped = c["C:strip_reasoning"]["answers_only"]
    assert stripped["same_as_traces"] is True and stripped["student"] == c["C:strip_reasoning"]["student"]
    assert all(len(row["student"]["outcomes"]) == row["student"]["n"] for row in c.values())


def test_benign_users_are_untouched(quick: tuple[Path, dict[str, Any]]) -> None:
    _, r = quick
    for kind, b in r["benign"].items():
        assert b["identical_to_A"] == 1.0, kind  # trace and answer, byte for byte
        assert b["with_trace"] == 1.0, kind  # an unflagged user gets the reasoning trace in every gateway
        assert b["errors"] == 0
    assert r["conditions"]["B"]["exposure"]["benign_defended"] == 0


def test_answer_filtering_keeps_only_right_answers(quick: tuple[Path, dict[str, Any]]) -> None:
    _, r = quick
    b, d = r["conditions"]["B"]["data"], r["conditions"]["D"]["data"]
    assert d["trained_on"] <= b["trained_on"]
    assert d["harvested"] == b["harvested"]


def test_the_harvest_carries_the_logit_watermark_and_the_control_is_clean(quick: tuple[Path, dict[str, Any]]) -> None:
    _, r = quick
    c = r["conditions"]
    marked, clean = c["C:logit_watermark"]["data"]["token_mark"], c["A"]["data"]["token_mark"]
    assert marked["n_scored"] > 0 and marked["cohorts"] == clean["cohorts"]  # same accounts' keys, same problems
    assert marked["z"] > clean["z"] and marked["p"] < clean["p"]
    assert marked["p"] < 0.01
    assert r["control"]["audit"]["p"] > 0.01  # the control student is not flagged by the family-wise audit
    # Radioactivity (the student's own answers carrying the mark) needs far more data than the quick run has:
    # it is measured and reported (token test at the campaign's cohorts), not asserted here.


def test_every_student_is_audited_by_its_weights_as_well(quick: tuple[Path, dict[str, Any]]) -> None:
    """Beside the HTTP audit, each student (and the control) answers the probes in-process from its weights,
    where the likelihood channel reads its preference among the signature's lead-ins; each mode comes with
    its curve (Holm p by number of probes) and the check on keys that never marked anything."""
    out, r = quick
    students = {**{n: c["audit"] for n, c in r["conditions"].items()}, "control": r["control"]["audit"]}
    for name, a in students.items():
        acc = a["access"]
        assert "error" not in acc, (name, acc)
        w, bb = acc["weights"], acc["black_box"]
        assert w["answered"] == w["queries"] == 24 and "likelihood" in w["channels"]
        assert [pt["n"] for pt in w["curve"]] == [10, 24] and [pt["n"] for pt in bb["curve"]] == [24]
        assert bb["clean"]["n_keys"] == 20 and w["clean"]["n_keys"] == 40  # 20 keys, one or two channels each
    assert not r["control"]["audit"]["access"]["weights"]["flagged"]
    summary = (out / "summary.md").read_text()
    assert "## Provenance by access" in summary
