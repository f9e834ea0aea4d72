"""`audit weights`: question a suspect whose weights we hold, and read its likelihoods of our keyed choices.

An operator sometimes holds the suspect's weights: an open-weights release, a checkpoint handed over in
discovery, or the distillation lab's students. The audit then needs no API. The model answers the probes
in-process (`cuirass.models.generate`, left-padded batches), every black-box channel scores those answers
exactly as `audit endpoint` scores an API's, and one more channel reads what only the weights reveal:

    likelihood : at each answer's final-answer sentence, the suspect's log-probability of each of the K
                 signature lead-ins ("Hence the answer is", ...) given everything it wrote before it,
                 summed per window (the probe's last word); the keyed lead-in's rank in its window;
                 R = sum of the ranks, exact null (`marks.signature.rank_score`)

A student that learned the signature prefers the keyed lead-in even where it happened to sample another,
so the rank test needs far fewer probes than counting sampled lead-ins (BENCHMARKS.md, "Answer
signature"). The test keeps its exact null whatever the scores are, as long as they come from the suspect
and the probes alone: the key only chooses which variant's rank is read.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cuirass.marks import signature
from cuirass.marks.answer import find_final_answer
from cuirass.prove.channels import Channel, ChannelScore, corpus_digest
from cuirass.prove.suspect import Answer

BATCH = 32  # probes generated at once (one progress step each)


@dataclasses.dataclass(frozen=True, slots=True)
class Weights:
    """A suspect (or control) model we hold: a Hugging Face model directory."""

    path: Path
    label: str = ""  # its name in the report (default: the directory's name)
    device: str = "cpu"
    threads: int | None = None

    @property
    def model(self) -> str:
        return self.label or self.path.name

    @property
    def base_url(self) -> str:
        return self.path.resolve().as_uri()

    def describe(self) -> dict[str, str]:
        return {"base_url": self.base_url, "model": self.model}


class WeightsSuspect:
    """The suspect in-process: `ask` as `suspect.Suspect` does over HTTP, plus its likelihood channel."""

    def __init__(self, model: Any, tokenizer: Any, *, progress: bool = True) -> None:
        """A model and its tokenizer already in memory (the lab's benches train them in-process)."""
        self.model, self.tokenizer = model, tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.progress = progress
        self._leads: dict[tuple[str, str], np.ndarray | None] = {}  # an answer is read once however often scored

    @classmethod
    def load(cls, target: Weights, *, progress: bool = True) -> WeightsSuspect:
        """The model directory `target` names, loaded as the local engine loads it."""
        from cuirass.engine.loader import EngineError, load_model

        try:
            loaded = load_model(str(target.path), target.device, threads=target.threads)
        except EngineError as exc:
            raise RuntimeError(exc.message) from None
        return cls(loaded.model, loaded.tokenizer, progress=progress)

    def ask(
        self, prompts: Sequence[str], *, max_tokens: int, temperature: float, desc: str, seed: int | None = None
    ) -> list[Answer]:
        """One answer per prompt, in order; batch b is sampled from seed + b * BATCH (reproducible)."""
        from tqdm import tqdm

        from cuirass.models.generate import generate

        out: list[Answer] = []
        with tqdm(total=len(prompts), desc=desc, unit="q", disable=not self.progress, file=sys.stderr) as bar:
            for start in range(0, len(prompts), BATCH):
                batch = list(prompts[start : start + BATCH])
                texts = generate(
                    self.model, self.tokenizer, batch, temperature, (seed or 0) + start, max_new_tokens=max_tokens
                )
                out += [Answer(p, t) for p, t in zip(batch, texts, strict=True)]
                bar.update(len(batch))
        return out

    def lead_scores(self, prompt: str, text: str) -> np.ndarray | None:
        """The suspect's log-probability of each of the K lead-ins (with " answer is") where its answer opens
        its final-answer sentence, given the prompt and everything before; None without such a sentence."""
        if (prompt, text) not in self._leads:
            self._leads[prompt, text] = self._lead_scores(prompt, text)
        return self._leads[prompt, text]

    def _lead_scores(self, prompt: str, text: str) -> np.ndarray | None:
        import torch

        from cuirass.models.corpus import prompt_ids

        fa = find_final_answer(text)
        if fa is None or fa.convention != "answer_is":
            return None
        before = text[: fa.protected_start]
        head = before.rstrip()
        gap = before[len(head) :]  # as the suspect wrote it: nothing when the answer opens with the sentence
        head_ids = self._ids(head)
        context = prompt_ids(self.tokenizer, prompt) + head_ids
        conts = [self._ids(head + gap + lead + " answer is")[len(head_ids) :] for lead, _ in signature.LEADS]
        width = max(len(c) for c in conts)
        pad = int(self.tokenizer.pad_token_id)
        ids = torch.tensor([context + c + [pad] * (width - len(c)) for c in conts], device=self.model.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[:, len(context) - 1 : -1].float()
        logp = torch.log_softmax(logits, -1)
        return np.array([sum(float(logp[v, i, t]) for i, t in enumerate(c)) for v, c in enumerate(conts)])

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def channels(self) -> list[Channel]:
        return [LikelihoodChannel(self)]

    def close(self) -> None:
        self.model = None


class LikelihoodChannel:
    """The signature read from the suspect's likelihoods (needs its weights: `WeightsSuspect`)."""

    name = "likelihood"
    purpose = "signature"
    method = (
        "Answer signature, read from the suspect's weights. At each answer's final-answer sentence the "
        "suspect's log-probability of each of the K = 8 signature lead-ins, given the prompt and all it "
        "wrote before, is computed; the K scores are summed over the answers of each window (the prompt's "
        "last word), and the variant BLAKE2b(key, w) mod K selects is ranked among them (0 = least likely; "
        "ties by variant order). Under H0 (the suspect never learned from text signed with the key) each "
        "window's keyed variant is uniform and independent of the suspect, so its rank is uniform on "
        "0..K-1 and independent across windows: R, the sum of ranks, has the exact null of a sum of "
        "discrete uniforms. Reported as n_green = R out of n_scored = (K - 1) x windows, gamma = 1/2, and "
        "z = (R - E R) / sd R."
    )

    def __init__(self, suspect: WeightsSuspect) -> None:
        self.suspect = suspect

    def window_scores(self, prompts: Sequence[str], texts: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for prompt, text in zip(prompts, texts, strict=True):
            s = self.suspect.lead_scores(prompt, text)
            if s is not None:
                w = signature.window(prompt)
                out[w] = out.get(w, np.zeros(signature.K)) + s
        return out

    def score(
        self,
        texts: Sequence[str],
        keys: Sequence[bytes],
        exclude: Sequence[str] = (),
        prompts: Sequence[str] | None = None,
    ) -> list[ChannelScore]:
        by_window = self.window_scores(prompts, texts) if prompts is not None else {}
        u = int.from_bytes(corpus_digest(texts)[:8], "big") / 2**64
        top = (signature.K - 1) * len(by_window)
        out = []
        for key in keys:
            r = signature.rank_score(by_window, key, u)
            out.append(ChannelScore(top, r.rank_sum, r.n_windows, 0.5, r.p_value, r.p_randomized, r.z))
        return out
