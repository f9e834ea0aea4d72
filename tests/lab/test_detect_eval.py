"""`cuirass lab detect --quick` end to end: report files exist and the numbers point the right way."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("cuirass.detect.replay", reason="detection engine not built yet")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    from click.testing import CliRunner

    from cuirass.cli import main

    out = tmp_path_factory.mktemp("detect-eval")
    res = CliRunner().invoke(main, ["lab", "detect", "--quick", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "ROC AUC" in res.output  # the summary table is printed
    return out, json.loads((out / "results.json").read_text())


def test_quick_eval_writes_every_report_file(quick_results):
    out, _results = quick_results
    for name in (
        "results.json",
        "summary.md",
        "roc.png",
        "leakage-cuirass.png",
        "traffic.jsonl",
        "calibration.jsonl",
        "test.jsonl",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Headline" in (out / "summary.md").read_text()


def test_quick_eval_numbers_are_sane(quick_results):
    _, results = quick_results
    ours = results["detectors"]["cuirass"]
    assert 0.5 < ours["auc"] <= 1.0
    for r in ours["at_fpr"].values():
        assert 0.0 <= r["recall"] <= 1.0 and r["fpr"] <= 0.01 + 1e-9
    op = ours["operating_point"]
    assert op["benign_accounts"] > 100 and op["attack_accounts"] > 100
    assert 0.0 <= op["benign_fpr"] <= 1.0 and 0.0 <= op["recall"] <= 1.0
    attack = [k for k in ours["by_kind"] if k["label"] == "attack"]
    benign = [k for k in ours["by_kind"] if k["label"] == "benign"]

    def mean(rows):
        return sum(k["mean_score"] * k["accounts"] for k in rows) / sum(k["accounts"] for k in rows)

    assert mean(attack) > mean(benign)  # campaigns score above benign on average
    for c in ours["campaigns"]:
        assert c["leakage"] is None or 0.0 <= c["leakage"] <= 1.0
    assert {c["kind"] for c in ours["campaigns"]} == {"naive", "hydra", "stealth", "agentic", "rubric"}
    for fp in ours["false_positives"]:
        assert fp["kind"] and isinstance(fp["reasons"], list)
    peer = results["detectors"].get("honeypotllm")  # present only where the peer's venv exists
    assert peer is None or 0.0 <= peer["auc"] <= 1.0
