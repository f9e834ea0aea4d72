"""Who sends the traffic: account ids, orgs, addresses, user agents, payment fingerprints, signup time.

Benign infrastructure is deliberately messy: corporate teams share a NAT prefix and a company
card, backends sit in the same cloud ranges that proxy resellers rent, and most clients use
the same few SDK user agents. Attack infrastructure is shared only as much as a campaign says.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random

# Common client user agents, with rough popularity among API users.
SDK_AGENTS = (
    ("OpenAI/Python 1.54.3", 22),
    ("OpenAI/Python 1.40.0", 10),
    ("OpenAI/Python 1.35.7", 6),
    ("AsyncOpenAI/Python 1.54.3", 6),
    ("OpenAI/NodeJS 4.67.1", 12),
    ("OpenAI/NodeJS 4.52.0", 5),
    ("python-requests/2.32.3", 8),
    ("python-httpx/0.27.2", 5),
    ("langchain-openai/0.2.9", 5),
    ("curl/8.5.0", 3),
    ("Go-http-client/2.0", 3),
    ("okhttp/4.12.0", 2),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", 7),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        4,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", 2),
)

# First two octets of address ranges by kind. Cloud ranges are shared by legit backends and resellers.
RESIDENTIAL = (
    "24.{}",
    "71.{}",
    "73.{}",
    "81.{}",
    "86.{}",
    "92.{}",
    "101.{}",
    "112.{}",
    "174.{}",
    "177.{}",
    "186.{}",
    "189.{}",
    "2.{}",
    "5.{}",
    "49.{}",
    "58.{}",
    "110.{}",
    "122.{}",
    "182.{}",
    "223.{}",
)
CLOUD = (
    "34.{}",
    "35.{}",
    "52.{}",
    "54.{}",
    "3.{}",
    "13.{}",
    "20.{}",
    "40.{}",
    "104.{}",
    "159.{}",
    "165.{}",
    "167.{}",
    "139.{}",
    "45.{}",
)


@dataclasses.dataclass(slots=True)
class Identity:
    """How one account shows up on the wire. `ips` are used in order of preference."""

    account: str
    org: str | None
    ips: tuple[str, ...]
    user_agent: str
    payment_fingerprint: str | None
    created: float
    ip_stickiness: float = 0.9  # probability of using the first address

    def ip(self, rng: random.Random) -> str:
        if len(self.ips) == 1 or rng.random() < self.ip_stickiness:
            return self.ips[0]
        return rng.choice(self.ips[1:])


def opaque_id(prefix: str, *parts: object) -> str:
    """A stable id that reveals nothing about what it names (no kind, no index ordering)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return f"{prefix}_{digest[:16]}"


def sdk_agent(rng: random.Random) -> str:
    return rng.choices([a for a, _ in SDK_AGENTS], weights=[w for _, w in SDK_AGENTS])[0]


def browser_agent(rng: random.Random) -> str:
    """A Chromium browser's user agent down to its build number: thousands of accounts, hardly two alike."""
    os_part = rng.choice(
        (
            "Windows NT 10.0; Win64; x64",
            "Macintosh; Intel Mac OS X 10_15_7",
            "X11; Linux x86_64",
            "Macintosh; Intel Mac OS X 14_5",
        )
    )
    build = f"{rng.randint(118, 133)}.0.{rng.randint(5000, 6999)}.{rng.randint(0, 250)}"
    return f"Mozilla/5.0 ({os_part}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{build} Safari/537.36"


def address(rng: random.Random, prefixes: tuple[str, ...] = RESIDENTIAL) -> str:
    """A host in a random /16 of the given first-octet family."""
    return f"{rng.choice(prefixes).format(rng.randrange(256))}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def subnet(rng: random.Random, prefixes: tuple[str, ...]) -> str:
    """A random /24, written as its first three octets."""
    return f"{rng.choice(prefixes).format(rng.randrange(256))}.{rng.randrange(256)}"


def host_in(rng: random.Random, net24: str) -> str:
    return f"{net24}.{rng.randrange(1, 255)}"


def payment_fingerprint(*parts: object) -> str:
    return "pf_" + hashlib.sha256(("card:" + ":".join(str(p) for p in parts)).encode()).hexdigest()[:20]


def home_addresses(rng: random.Random) -> tuple[tuple[str, ...], float]:
    """A person's addresses: home, often a phone and a workplace; how sticky the first one is."""
    ips = [address(rng)]
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        ips.append(address(rng))
    return tuple(ips), rng.uniform(0.6, 0.97)
