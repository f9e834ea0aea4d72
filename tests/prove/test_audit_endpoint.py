"""`cuirass audit endpoint` end to end, real processes: the built-in reference model behind `cuirass serve`,
watermarked at the logit level for one cohort among 12 (8 regular + 4 honeypot); an account harvests answers;
the audit questions the suspect (the watermarked model) and a control (the same model, no watermark)
through the real `openai` client, with the prompts the event log shows were harvested."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cuirass.audit_log import canonical
from cuirass.keyring import Keyring
from tests.conftest import Gateway

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.heavy  # a fine-tuned suspect audited over HTTP
openai = pytest.importorskip("openai")

MASTER = "endpoint-audit-master-secret-0123456789"
N_COHORTS, N_HONEYPOT = 8, 4
# The reference model solves templated arithmetic: only a few percent of its steps are free choices. The
# watermark marks only the steps where the model is unsure (entropy gate, min_entropy 0.5 by default) and
# the audit scores the same steps (it loads our model for the gate): measured in-process, 24 answers give
# p ~ 1e-6 gated against ~1e-3 scoring every step.
WM = {"gamma": 0.25, "delta": 4.0, "context": 4}
HARVEST = 32  # distinct prompts the account harvests (the audit's default probe set)
QUERIES = 48  # answers the audit collects from each endpoint
MAX_TOKENS = 96  # a worked solution of the reference task is 30-70 tokens


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    local = {"type": "local", "path": "builtin:reference", "device": "cpu", "threads": 1}
    cfg: dict[str, Any] = {
        "models": [{"name": "ref-wm", "upstream": local}, {"name": "ref", "upstream": local}],
        "policy": {
            "n_cohorts": N_COHORTS,
            "n_honeypot_cohorts": N_HONEYPOT,
            "models": {"ref-wm": {"default_actions": ["logit_watermark"]}},  # every request of ref-wm
            "options": {"logit_watermark": WM},
        },
        "events": {"flush_interval_s": 0.05},
        "detection": {"enabled": False},
    }
    g = Gateway(
        tmp_path_factory.mktemp("gw-audit"),
        cfg,
        env={"CUIRASS_MASTER_SECRET": MASTER, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
    )
    yield g
    g.stop()


def _harvest(gw: Gateway) -> None:
    from cuirass.models.problems import problems

    client = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=2, timeout=120)
    for i, p in enumerate(problems(HARVEST, seed=11)):
        client.chat.completions.create(
            model="ref-wm", messages=[{"role": "user", "content": p.question}], max_tokens=MAX_TOKENS, seed=i
        )
    gw.events(expect=HARVEST, timeout=30)


@pytest.mark.timeout(1200)
def test_audit_endpoint_flags_the_suspect_and_its_cohort_not_the_control(gw: Gateway, tmp_path: Path) -> None:
    started = time.monotonic()
    _harvest(gw)
    out, page = tmp_path / "evidence.json", tmp_path / "evidence.html"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cuirass",
            "audit",
            "endpoint",
            "--base-url",
            gw.base_url,
            "--model",
            "ref-wm",
            "--api-key",
            gw.key,
            "--queries",
            str(QUERIES),
            "--max-tokens",
            str(MAX_TOKENS),
            "--seed",
            "1000",
            "--concurrency",
            "2",
            "--control-base-url",
            gw.base_url,
            "--control-model",
            "ref",
            "--control-api-key",
            gw.key,
            "--out",
            str(out),
            "--html",
            str(page),
            "--no-progress",
            "--json",
            "--config",
            str(gw.config_path),
            "--data-dir",
            str(gw.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=1000,
        env={**os.environ, "CUIRASS_MASTER_SECRET": MASTER, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    ring = Keyring(MASTER.encode(), N_COHORTS)
    cohort = ring.cohort_of(gw.account)
    cohorts = report["method"]["cohorts"]
    assert len(cohorts) == N_COHORTS + N_HONEYPOT >= 8 and cohort in cohorts

    ep = report["endpoint"]
    assert ep["probe_source"] == "event-log" and ep["answered"] == QUERIES and ep["failed"] == 0
    assert ep["token_windows"]["scored"] < ep["token_windows"]["all"]  # prompt windows (numbers) left out
    token = {t["cohort"]: t for t in report["tests"] if t["channel"] == "token"}
    hit = token[cohort]
    print(
        f"\nsuspect: {hit['n_green']}/{hit['n_scored']} green windows, p = {hit['p_value']:.3g} "
        f"(Holm {hit['p_corrected']:.3g}); control smallest p = {report['control']['min_p']:.3g} "
        f"(Holm {report['control']['min_p_corrected']:.3g}); {time.monotonic() - started:.0f} s"
    )
    assert hit["p_value"] < 1e-6 and hit["implicated"]
    assert [(t["channel"], t["cohort"]) for t in report["implicated"]] == [("token", cohort)]  # the right one
    assert [a["account"] for a in report["implicated"][0]["accounts"]] == [gw.account]
    assert min(t["p_value"] for c, t in token.items() if c != cohort) > 1e-4

    ctl = report["control"]
    assert ctl["implicated"] == [] and ctl["min_p_corrected"] > 0.01  # the control is not flagged
    assert {t["cohort"]: t for t in ctl["tests"] if t["channel"] == "token"}[cohort]["p_value"] > 1e-3
    assert ctl["passed"]

    suspect_rows = [r for r in report["transcripts"]["suspect"] if r["text"] is not None]
    raw = b"".join(canonical({"prompt": r["prompt"], "text": r["text"]}) + b"\n" for r in suspect_rows)
    given = {i["role"]: i for i in report["inputs"]}
    assert given["suspect outputs"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert {"probes", "control outputs"} <= set(given)
    assert report["canary"] is None and any("canary" in n for n in ep["notes"])
    html = page.read_text()
    assert "How the suspect was questioned" in html and cohort in html and "data:image/png;base64" in html
    assert gw.key not in html and gw.key not in out.read_text()  # the re-run command redacts API keys
    summary = json.loads(run.stdout)
    assert summary["implicated"][0]["cohort"] == cohort and summary["control"]["passed"]
