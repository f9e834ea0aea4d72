"""Antidistillation sampling: the bias points at tokens that really do raise a student's task loss."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from cuirass.engine.batch import run_choice
from cuirass.engine.params import parse
from cuirass.respond.base import DefenseContext
from cuirass.respond.logit.antidistill import Antidistill, proxy_pair
from cuirass.respond.logit.base import LOGIT_DEFENSES

CTX = DefenseContext(account="a", cohort="c000", prompt="", endpoint="", model="m", key=b"k" * 32)


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("task") / "task.jsonl"
    rows = [{"question": f"what is {a} plus {a}?", "solution": f"{a} plus {a} is {2 * a}."} for a in range(12)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_registered_and_validated() -> None:
    assert LOGIT_DEFENSES["antidistill"] is Antidistill
    with pytest.raises(ValueError):
        Antidistill(epsilon=0)
    with pytest.raises(ValueError):
        Antidistill(strength=-1)


def test_bias_is_strength_times_the_finite_difference(tiny_dir: Path, tiny_lm, task: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    opts = {"proxy": str(tiny_dir), "task": str(task), "task_size": 8, "epsilon": 0.05}
    ids = torch.tensor([tiny_lm.tokenizer.encode("what is 3 plus 3?")])
    scores = torch.zeros(1, tiny_lm.vocab_size)
    assert torch.equal(Antidistill(**opts, strength=0).processor(CTX, tiny_lm.tokenizer)(ids, scores), scores)
    one = Antidistill(**opts, strength=1.0).processor(CTX, tiny_lm.tokenizer)(ids, scores)
    two = Antidistill(**opts, strength=2.0).processor(CTX, tiny_lm.tokenizer)(ids, scores)
    assert one.abs().max() > 0
    assert torch.allclose(two, 2 * one, atol=1e-5)  # linear in strength, deterministic


def test_tokens_it_favours_raise_the_students_task_loss(tiny_dir: Path, tiny_lm, task: Path) -> None:  # type: ignore[no-untyped-def]
    """One SGD step of the proxy on the most-favoured token hurts its task loss more than on the least."""
    import copy

    import torch

    from cuirass.respond.logit.antidistill import _batch, _task_examples

    opts = {"proxy": str(tiny_dir), "task": str(task), "task_size": 8, "epsilon": 0.01}
    proc = Antidistill(**opts, strength=1.0).processor(CTX, tiny_lm.tokenizer)
    x = torch.tensor([tiny_lm.tokenizer.encode("what is 5 plus 5? 5 plus 5 is")])
    delta = proc(x, torch.zeros(1, tiny_lm.vocab_size))[0]
    batch = _batch(tiny_lm.tokenizer, _task_examples(str(task), 8))

    def task_loss_after_training_on(token: int) -> float:
        student = copy.deepcopy(tiny_lm.model).train()
        seq = torch.cat([x, torch.tensor([[token]])], dim=1)
        labels = torch.full_like(seq, -100)
        labels[0, -1] = token
        with torch.enable_grad():
            student(input_ids=seq, labels=labels).loss.backward()
        with torch.no_grad():
            for p in student.parameters():
                if p.grad is not None:
                    p -= 0.05 * p.grad
            return float(student(input_ids=batch[0], attention_mask=batch[1], labels=batch[2]).loss)

    hi, lo = int(delta.argmax()), int(delta.argmin())
    assert task_loss_after_training_on(hi) > task_loss_after_training_on(lo)
    assert proxy_pair(str(tiny_dir), str(task), 8, 0.01).task_loss > 0


def test_engine_generation_changes_with_antidistill(tiny_dir: Path, tiny_lm, task: Path) -> None:  # type: ignore[no-untyped-def]
    req = parse(tiny_lm, "/v1/completions", {"prompt": "what is 2 plus 2?", "max_tokens": 30, "seed": 1})
    plain = run_choice(tiny_lm, req, 0, [], threading.Event())
    proc = Antidistill(proxy=str(tiny_dir), task=str(task), task_size=8, strength=50.0).processor(
        CTX, tiny_lm.tokenizer
    )
    poisoned = run_choice(tiny_lm, req, 0, [proc], threading.Event())
    again = run_choice(
        tiny_lm,
        req,
        0,
        [
            Antidistill(proxy=str(tiny_dir), task=str(task), task_size=8, strength=50.0).processor(
                CTX, tiny_lm.tokenizer
            )
        ],
        threading.Event(),
    )
    assert poisoned.token_ids != plain.token_ids
    assert poisoned.token_ids == again.token_ids  # same seed, same proxy: same answer


def test_rows_sharing_a_proxy_step_together_as_they_would_alone(
    tiny_dir: Path,
    tiny_lm,
    task: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the engine's batch, antidistill rows share one proxy pass per step; each row's answer is what it
    would be alone (greedy, so only the logits matter)."""
    from cuirass.engine.batch import Batch
    from cuirass.engine.generate import ChoiceRun

    def runs() -> list[ChoiceRun]:
        out = []
        for i, prompt in enumerate(["what is 2 plus 2?", "a much longer question about apples and pears", "hi"]):
            req = parse(tiny_lm, "/v1/completions", {"prompt": prompt, "max_tokens": 12 + 3 * i, "temperature": 0})
            proc = Antidistill(proxy=str(tiny_dir), task=str(task), task_size=8, strength=50.0).processor(
                CTX, tiny_lm.tokenizer
            )
            out.append(ChoiceRun(tiny_lm, req, 0, [proc], threading.Event()))
        return out

    alone = [run_choice(tiny_lm, r.req, 0, r.processors, threading.Event()).token_ids for r in runs()]
    from cuirass.respond.logit import antidistill

    widths: list[int] = []
    real = antidistill._step_together
    monkeypatch.setattr(antidistill, "_step_together", lambda procs, ids: widths.append(len(procs)) or real(procs, ids))
    batch, together = Batch(tiny_lm, max_rows=4), runs()
    finished = {}
    for r in together:
        finished.update(dict(batch.admit(r)))
    while len(finished) < len(together):
        finished.update(dict(batch.step()))
    assert [finished[r].token_ids for r in together] == alone
    assert max(widths) == 3  # the three rows really shared proxy passes
