"""Who asks what: benign users and the harvesting campaign as plain, seeded lists of requests.

Nothing here talks to a server. The same (seed, config) always gives the same requests in the same order,
so every condition faces the same attacker budget and every gateway sees the same benign users, with the
same prompts and sampling seeds (which is what makes their replies comparable byte for byte).

- benign users ask held-out problems of the task (tasks.py; the reference problems by default), a few each,
  from their own network and browser, some bare, some in a casual frame ("Quick question: ...");
- the bulk campaign (A, B, C, D) spreads `campaign_queries` training problems over `campaign_accounts`
  sybils behind two proxy addresses, with the client library's default user agent, and asks each problem
  inside an elicitation frame ("Think step by step and show your work, then give the final answer"), as
  distillers do to get full worked solutions with checkable answers;
- the stealthy campaign (E) uses `stealth_accounts_factor` times more accounts (a few queries each), one
  address and browser each, paraphrases every prompt (casual frames), and mixes in benign-looking requests.

The frames are the ones the reference model saw in training (problems.CASUAL, problems.ELICIT), so the teacher
answers a framed problem as well as a bare one.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import Any

from cuirass.lab.distill.config import DistillConfig
from cuirass.lab.distill.gateway import AccountSpec
from cuirass.lab.distill.tasks import load
from cuirass.models.problems import CASUAL, ELICIT

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
)
# light rewordings a stealthy harvester (or a casual user) wraps around the problem
PARAPHRASES = ("{q}", *CASUAL)
BENIGN_FRAMED = 0.3  # of benign requests: asked in a casual frame

# salts that keep the problem streams of the roles apart (training problems vs held-out problems)
HARVEST_SALT, BENIGN_SALT, MIX_SALT = 11, 23, 37


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One chat request: who sends it, from where, the prompt, and the problem it came from."""

    role: str  # "benign" | "campaign" | "mix" (a campaign account's benign-looking request)
    account: str
    ip: str
    user_agent: str | None  # None: the openai client's own
    prompt: str
    seed: int
    problem: Any  # the task's problem: .question, .solution, .answer

    @property
    def harvest(self) -> bool:
        return self.role == "campaign"


def _problems(config: DistillConfig, salt: int, split: str) -> Iterator[Any]:
    return load(config.task).stream(config.seed * 1_000_003 + salt, split)


def benign(config: DistillConfig) -> list[Request]:
    """The benign users' requests, user by user (the same in every gateway)."""
    rng = random.Random(f"benign:{config.seed}")
    stream = _problems(config, BENIGN_SALT, "test")
    out = []
    for u in range(config.benign_users):
        # each user on a network of its own (home and office lines do not share a /24)
        account, ip, ua = f"user-{u:03d}", f"127.{10 + u // 250}.{u % 250}.2", rng.choice(BROWSERS)
        for _ in range(config.benign_queries):
            p = next(stream)
            prompt = rng.choice(CASUAL).format(q=p.question) if rng.random() < BENIGN_FRAMED else p.question
            out.append(Request("benign", account, ip, ua, prompt, rng.randrange(1 << 31), p))
    return out


def campaign(config: DistillConfig, stealth: bool, prefix: str) -> list[Request]:
    """The campaign's requests in sending order; account ids start with `prefix` (one per condition)."""
    rng = random.Random(f"campaign:{config.seed}")
    harvest = _problems(config, HARVEST_SALT, "train")
    mix = _problems(config, MIX_SALT, "test")
    n_accounts = config.campaign_accounts * (config.stealth_accounts_factor if stealth else 1)
    out = []
    for i in range(config.campaign_queries):
        p = next(harvest)
        a = i % n_accounts
        account = f"{prefix}-{a:04d}"
        seed = rng.randrange(1 << 31)  # drawn for every request, so the seeds match across conditions
        if stealth:
            ip, ua = f"127.0.{3 + a // 250}.{a % 250 + 2}", BROWSERS[a % len(BROWSERS)]
            prompt = rng.choice(PARAPHRASES).format(q=p.question)
        else:
            ip, ua, prompt = f"127.0.2.{a % 2 + 2}", None, rng.choice(ELICIT).format(q=p.question)
        out.append(Request("campaign", account, ip, ua, prompt, seed, p))
        if stealth and rng.random() < config.stealth_benign_mix:
            m = next(mix)
            out.append(Request("mix", account, ip, ua, m.question, rng.randrange(1 << 31), m))
    return out


def interleave(benign_reqs: list[Request], campaign_reqs: list[Request], seed: int) -> list[Request]:
    """One sending order: the benign requests spread evenly through the campaign's (deterministic)."""
    if not campaign_reqs:
        return list(benign_reqs)
    out: list[Request] = []
    step = len(campaign_reqs) / max(1, len(benign_reqs))
    b = 0
    for i, r in enumerate(campaign_reqs):
        while b < len(benign_reqs) and b * step <= i:
            out.append(benign_reqs[b])
            b += 1
        out.append(r)
    return out + benign_reqs[b:]


def accounts(requests: list[Request], org: dict[str, str]) -> list[AccountSpec]:
    """The accounts to create for these requests; `org` maps a role to its org."""
    seen: dict[str, AccountSpec] = {}
    for r in requests:
        role = "benign" if r.role == "benign" else "campaign"
        seen.setdefault(r.account, AccountSpec(r.account, org[role], role))
    return list(seen.values())
