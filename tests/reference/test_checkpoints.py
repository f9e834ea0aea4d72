"""The shipped checkpoints load offline through plain `transformers` and answer held-out problems."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer

from cuirass.engine.reasoning import split
from cuirass.lab.reference.evaluate import final_answer_correct, generate
from cuirass.models import DECOY, REFERENCE
from cuirass.models.problems import problems

_WORKED = re.compile(
    r"\d+ (?:×|\+|-|÷|times|plus|minus|divided by) \d+ (?:=|is|makes|gives|equals|comes to|works out to) \d+"
)
_FINAL = re.compile(r"The answer is \d+\.$")


def _load(path):  # type: ignore[no-untyped-def]
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"no checkpoint at {path}: run `cuirass lab train-reference --install`")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    tokenizer.padding_side = "left"
    return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).eval(), tokenizer


@pytest.mark.parametrize("path", [REFERENCE, DECOY], ids=["reference", "decoy"])
def test_checkpoint_is_small_and_loads_offline(path) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = _load(path)
    assert sum(f.stat().st_size for f in path.iterdir()) <= 20 * 1024 * 1024
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|assistant|>\n")
    assert model.generation_config.temperature == 0.7 and model.generation_config.top_p == 0.9


def test_engine_samples_with_the_models_own_defaults_unless_asked_otherwise() -> None:
    from cuirass.engine.loader import load_model
    from cuirass.engine.params import parse

    lm = load_model("builtin:reference", device="cpu")
    chat = "/v1/chat/completions"
    msgs = [{"role": "user", "content": "What is 2 + 2?"}]
    plain = parse(lm, chat, {"messages": msgs}).params
    assert (plain.temperature, plain.top_p) == (0.7, 0.9)  # generation_config.json, as vLLM does
    asked = parse(lm, chat, {"messages": msgs, "temperature": 0, "top_p": 1}).params
    assert (asked.temperature, asked.top_p) == (0.0, 1.0)


def test_reference_writes_worked_solutions_to_held_out_problems() -> None:
    model, tokenizer = _load(REFERENCE)
    batch = list(problems(24, seed=11, split="test"))
    replies = generate(model, tokenizer, [p.question for p in batch], temperature=0.0)
    for reply in replies:
        reasoning, answer = split(reply)
        assert reasoning and _WORKED.search(reasoning), reply  # the worked steps in a <think> block
        assert _FINAL.fullmatch(answer.strip()), reply  # then only the short answer
    correct = sum(final_answer_correct(r, p.answer) for r, p in zip(replies, batch))
    assert correct >= 16  # the shipped model scores ~90% greedy (BENCHMARKS.md); 16/24 catches a broken checkpoint


def test_decoy_answers_in_the_same_format() -> None:
    model, tokenizer = _load(DECOY)
    batch = list(problems(4, seed=11, split="test"))
    replies = generate(model, tokenizer, [p.question for p in batch], temperature=0.0, max_new_tokens=200)
    assert sum(bool(_FINAL.search(r.strip())) for r in replies) >= 2, replies
    assert all(r.startswith("<think>") for r in replies), replies  # the same shape: a reasoning block, an answer


def test_reference_says_what_it_does_when_asked_anything_else() -> None:
    model, tokenizer = _load(REFERENCE)
    asked = ["hello, who are you?", "what can you do?", "What is the capital of France?"]
    for reply in generate(model, tokenizer, asked, temperature=0.0):
        assert not reply.startswith("<think>") and "arithmetic" in reply and len(reply) < 200, reply
