"""Rewrite a finished answer so that its lexical choices carry the cohort's key.

No logits are needed: the gateway fronts remote models, so the watermark is applied to the text the
upstream returned, by moving each choice point to its one green variant (keyed.py). Deterministic in
(key, text): repeating a prompt, or comparing answers, shows the same rewrite.
"""

from __future__ import annotations

from cuirass.marks.text.choices import Finder, wants_an
from cuirass.marks.text.keyed import green, keyed_uniform

_DEFAULT = Finder()


def _article(original: str, word: str) -> str:
    new = "an" if wants_an(word) else "a"
    return new.capitalize() if original[:1].isupper() else new


def embed(text: str, key: bytes, strength: float = 1.0, finder: Finder | None = None) -> str:
    """The watermarked text. `strength` in [0, 1]: the keyed share of windows moved to green."""
    choices = (finder or _DEFAULT).choices(text)
    target: dict[str, int] = {}
    edits: list[tuple[int, int, str]] = []
    for c in choices:
        if c.window not in target:  # the first occurrence decides; repeats follow (one unit per window)
            keep = strength < 1.0 and keyed_uniform(key, b"strength|" + c.window.encode()) >= strength
            target[c.window] = c.variant if keep else green(key, c.window, c.k)
        v = target[c.window]
        if v == c.variant:
            continue
        new = c.surfaces[v]
        if c.article is not None:
            a, b = c.article
            fixed = _article(text[a:b], new)
            if fixed != text[a:b]:
                edits.append((a, b, fixed))
        edits.append((c.start, c.end, new))
    return apply_edits(text, edits)


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    """`text` with non-overlapping (start, end, replacement) edits applied."""
    out, pos = [], 0
    for a, b, new in sorted(edits):
        out.append(text[pos:a])
        out.append(new)
        pos = b
    out.append(text[pos:])
    return "".join(out)


def revert(text: str, watermarked: str, share: float, seed: bytes, finder: Finder | None = None) -> str:
    """A light paraphrase for robustness tests: undo a keyed `share` of the watermark's edits.

    Choices are aligned by order (the watermark never adds or removes one), and each changed choice
    goes back to the original variant with probability `share`.
    """
    f = finder or _DEFAULT
    before, after = f.choices(text), f.choices(watermarked)
    if len(before) != len(after):
        raise ValueError("texts do not align choice by choice")
    edits = []
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        if a.variant != b.variant and keyed_uniform(seed, b"revert|%d" % i) < share:
            edits.append((a.start, a.end, a.surfaces[b.variant]))
    return apply_edits(watermarked, edits)
