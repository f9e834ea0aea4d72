"""Near-duplicate phrasing: MinHash sketches of a prompt's sentences, banded into LSH keys.

Template keys (digest.template_keys) are exact: a campaign that paraphrases its instruction per
request ("Think step by step and show all your reasoning" / "Think one step at a time and show
all of your thought process") shares none. Two such wordings still share most of their words.
The Jaccard similarity of two sentences' word sets, J(A, B) = |A & B| / |A | B|, is estimated by
MinHash (Broder 1997, "On the resemblance and containment of documents"): for a random hash h,

    P[ min h(A) = min h(B) ] = J(A, B).

Locality-sensitive hashing by banding (Indyk & Motwani 1998; Leskovec, Rajaraman & Ullman,
"Mining of Massive Datasets", ch. 3): BANDS bands of ROWS minima each; a band's key hashes its
ROWS minima, so two sentences share at least one key with probability

    1 - (1 - J^ROWS)^BANDS          (ROWS=2, BANDS=4: J=0.8 -> 0.98, J=0.5 -> 0.68, J=0.2 -> 0.15)

A key is a bucket "everyone who wrote something like this": campaigns.py links accounts through
buckets, never through pairs, so no pair of sentences is ever compared. Chance collisions of
unrelated sentences land in big buckets that the idf weighting discounts, and each account offers
only the keys it repeats (signals/phrasing.py).

Work per prompt is bounded and linear: at most EDGE_SENTENCES key sentences at either end of the
prompt (each at most 40 words), one crc32 per word and one vectorised pass.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

ROWS, BANDS = 2, 4
EDGE_SENTENCES = 2  # sentences sketched at each end of a prompt (instructions sit at either end)
MIN_WORDS = 4  # sentences with fewer content words are too generic to link anyone
# Function words carry no phrasing; without them two sentences that share only "the" and "of" do not collide.
STOP = frozenset(
    "the and for you your are was were with that this these those from have has had not but can will would "
    "could should into out our its their them they then than what when who how any all one".split()
)

_SHIFT = np.uint64(32)
# Multiply-shift hashes h_i(x) = ((a_i x + b_i) >> 32) of 32-bit word hashes (Dietzfelbinger et al. 1997),
# with fixed seeds so that sketches agree across processes, shards and replays.
_rng = np.random.default_rng(0x5EED_4E4D)
_A = (_rng.integers(1, 1 << 32, size=ROWS * BANDS, dtype=np.uint64) | np.uint64(1)).reshape(1, -1)
_B = _rng.integers(0, 1 << 32, size=ROWS * BANDS, dtype=np.uint64).reshape(1, -1)


def near_keys(sentences: Sequence[Sequence[str]]) -> tuple[int, ...]:
    """LSH band keys of the first and last EDGE_SENTENCES sentences (lists of normalised words) that have at
    least MIN_WORDS content words."""
    hashes: list[int] = []
    starts: list[int] = []
    edges = (
        sentences
        if len(sentences) <= 2 * EDGE_SENTENCES
        else [*sentences[:EDGE_SENTENCES], *sentences[-EDGE_SENTENCES:]]
    )
    for tokens in edges:
        # The words that carry phrasing: 3+ letters (any length outside ASCII), no function words.
        kept = {t for t in tokens if (len(t) >= 3 or not t.isascii()) and t not in STOP}
        if len(kept) >= MIN_WORDS:
            starts.append(len(hashes))
            hashes.extend(map(zlib.crc32, map(str.encode, kept)))
    if not starts:
        return ()
    x = np.array(hashes, dtype=np.uint64).reshape(-1, 1)
    minima = np.minimum.reduceat((x * _A + _B) >> _SHIFT, starts, axis=0).tolist()  # sentences x (ROWS*BANDS)
    keys: dict[int, None] = {}
    for row in minima:
        for band in range(BANDS):
            key = band + 1
            for value in row[band * ROWS : (band + 1) * ROWS]:
                key = (key * 0x100000001B3 ^ value) & 0xFFFFFFFFFFFFFFFF  # FNV-style mix of the band's minima
            keys[((key * 0x9E3779B97F4A7C15) >> 32) & 0xFFFFFFFF or 1] = None
    return tuple(keys)
