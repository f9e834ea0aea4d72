"""What one distillation-lab run does: models, attacker budget, benign users, student and audit sizes.

`quick()` is the configuration the test suite runs (minutes on two shared cores); `mid()` the one the README
quotes; `full()` the issue's benchmark. Every number that changes a result is here and goes into the report.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class StudentSpec:
    """The student's architecture: a Hugging Face config file, or the size of a Llama-style decoder
    of the reference family (`cuirass.lab.reference.train.build_model`), trained from scratch."""

    config_path: str | None = None  # a config.json (or a directory holding one); overrides the sizes
    # The teacher's own size: a distiller trains as large a student as it likes, its constraint is data. On A's
    # 2,000 replies at 2,000 steps, 96 wide and 3 layers scored 29.6% and this size 59.4% (bench/student_budget.py,
    # 500 held-out problems), so the value ratios are read well above a constant guess's 3.7%.
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    ffn: int = 512


@dataclasses.dataclass(frozen=True, slots=True)
class DistillConfig:
    seed: int = 0
    teacher: str = "builtin:reference"  # a Hugging Face model directory, or builtin:NAME
    decoy: str = "builtin:decoy"
    task: str = "reference"  # what is harvested and scored: reference, gsm8k:DIR, jsonl:TRAIN,TEST (tasks.py)
    student: StudentSpec = StudentSpec()
    conditions: tuple[str, ...] = ("A", "B", "C", "D", "E")
    # attacker: the same budget in every condition
    campaign_accounts: int = 40
    campaign_queries: int = 2000  # harvested worked solutions per condition
    stealth_accounts_factor: int = 5  # E: this many times more accounts, so few queries each
    stealth_benign_mix: float = 0.5  # E: extra benign-looking requests per harvest request
    # benign users, the same prompts and seeds in every gateway
    benign_users: int = 20
    benign_queries: int = 5  # per user
    # the student and its evaluation
    # On A's 2,000 replies the teacher-size student scores 55.4% at 2,000 steps in the lab (a 96-wide 3-layer one:
    # 7.4% at 1,000 steps, 20.8% at 2,000; BENCHMARKS, "Distillation lab"; bench/student_budget.py for the curve).
    # A student that has not learned the arithmetic makes every value ratio read how well it guesses.
    train_steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-3
    eval_n: int = 1000  # held-out problems for accuracy and loss (1,000: a value ratio's interval about ±0.1)
    answers_only: bool = True  # also a student on each harvest's answers without their reasoning traces
    audit_queries: int = 400  # probe prompts the audit sends the student (the target: p < 1e-6 within 2,000)
    weights_queries: int = 200  # probes of the open-weights audit (the target: p < 1e-6 within 200)
    max_tokens: int = 160
    concurrency: int = 16  # requests in flight at once (the engine decodes them as one batch)
    threads: int = 1  # torch threads of each gateway's engine (the clients and the event loop need a core too)
    train_threads: int = 2  # torch threads of the students' training and evaluation (nothing else runs then)
    device: str = "auto"  # where the gateways' local engine runs the teacher and the students (auto: CUDA if any)

    @classmethod
    def quick(cls, seed: int = 0) -> DistillConfig:
        """The test suite's run: A, B, D and four defenses alone, a tiny harvest, a tiny student."""
        return cls(
            seed=seed,
            conditions=("A", "B", "C:logit_watermark", "C:decoy", "C:strip_reasoning", "C:perturb", "C:signature", "D"),
            student=StudentSpec(hidden=64, layers=2, heads=2, ffn=256),
            campaign_accounts=4,
            campaign_queries=16,
            benign_users=4,
            benign_queries=2,
            train_steps=80,
            batch_size=16,
            eval_n=24,
            audit_queries=24,
            weights_queries=24,
            train_threads=1,
        )

    @classmethod
    def mid(cls, seed: int = 0) -> DistillConfig:
        """Every condition at a fifth of the full budget: 400 harvested solutions each from 8 accounts (50 per
        account, as in the full run), students trained 800 steps."""
        return cls(
            seed=seed,
            campaign_accounts=8,
            campaign_queries=400,
            benign_users=8,
            benign_queries=3,
            train_steps=800,
            eval_n=150,
            audit_queries=100,
        )

    @classmethod
    def full(cls, seed: int = 0) -> DistillConfig:
        """The issue's benchmark: 2,000 harvested solutions per condition from 40 accounts."""
        return cls(seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
