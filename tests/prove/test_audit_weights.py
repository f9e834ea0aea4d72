"""`cuirass audit weights` end to end (issue 21): a suspect whose weights we hold is the built-in reference
model fine-tuned on its own answers signed with one honeypot cohort's key (what a distiller's copy of
flagged traffic looks like); the control is the reference model itself. The real CLI loads each directory,
asks the probes in-process and tests every channel, the likelihood of the signature included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cuirass.keyring import Keyring
from cuirass.marks import signature

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.heavy  # a fine-tuning and an audit of two models

MASTER = "weights-audit-master-secret-0123456789"
N_COHORTS, N_HONEYPOT = 8, 4
COHORT = "h001"  # the honeypot cohort the suspect's training answers were signed for
QUERIES = 48


def _signed_copy(where: Path) -> Path:
    """The reference model after 100 steps on 480 of its training problems, each answer signed for COHORT."""
    import dataclasses

    import torch

    from cuirass.engine.loader import resolve_path
    from cuirass.lab.reference import evaluate as ev
    from cuirass.lab.reference.train import TrainConfig, fit
    from cuirass.models.problems import problems

    key = Keyring(MASTER.encode(), N_COHORTS).key("signature", COHORT, 0)
    data = [
        dataclasses.replace(p, solution=signature.embed(p.solution, p.question, key))
        for p in problems(480, seed=5, split="train")
    ]
    assert sum(signature.read(p.solution) is not None for p in data) == len(data)
    model, tokenizer = ev.load(resolve_path("builtin:reference"))
    model.train()
    stream = (data[i % len(data)] for i in range(10**6))
    fit(model, tokenizer, stream, TrainConfig(steps=100, batch_size=16, lr=1e-3, warmup=5, threads=2), progress=False)
    torch.manual_seed(0)
    model.eval().save_pretrained(where)
    tokenizer.save_pretrained(where)
    return where


@pytest.mark.timeout(900)
def test_audit_weights_names_the_cohort_by_likelihood_and_clears_the_control(tmp_path: Path) -> None:
    suspect = _signed_copy(tmp_path / "suspect")
    config = tmp_path / "cuirass.yaml"
    config.write_text(json.dumps({"policy": {"n_cohorts": N_COHORTS, "n_honeypot_cohorts": N_HONEYPOT}}))
    out, page = tmp_path / "evidence.json", tmp_path / "evidence.html"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cuirass",
            "audit",
            "weights",
            str(suspect),
            "--control",
            str(Path(__file__).resolve().parents[2] / "src/cuirass/models/reference"),
            "--queries",
            str(QUERIES),
            "--max-tokens",
            "120",
            "--seed",
            "0",
            "--threads",
            "1",
            "--tokenizer",
            "builtin:reference",
            "--no-progress",
            "--out",
            str(out),
            "--html",
            str(page),
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=800,
        env={**os.environ, "CUIRASS_MASTER_SECRET": MASTER, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["endpoint"]["suspect"]["base_url"] == suspect.resolve().as_uri()
    assert report["endpoint"]["answered"] == QUERIES
    assert set(report["channels"]) >= {"likelihood", "signature", "text", "token"}
    best = report["channels"]["likelihood"]
    assert best["best"] == f"{COHORT}/epoch 0" and best["min_p_corrected"] < 0.01
    assert {(t["cohort"], t["channel"]) for t in report["implicated"]} >= {(COHORT, "likelihood")}
    assert all(t["cohort"] == COHORT for t in report["implicated"])  # no other cohort is accused
    likelihood = [t for t in report["tests"] if t["channel"] == "likelihood"]
    assert len(likelihood) == N_COHORTS + N_HONEYPOT and all("z" in t for t in likelihood)
    control = report["control"]
    assert control["passed"] and not control["implicated"]  # the unsigned model: nothing, uniform p-values
    assert "likelihood" in page.read_text()
    assert MASTER not in out.read_text() + page.read_text() + run.stderr
