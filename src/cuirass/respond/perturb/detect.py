"""Which kind of content a response is: code, a worked math solution, or prose.

Cheap, conservative heuristics run on the hot path. Code wins when the answer contains Python (a parsing
fenced block, or a whole text that parses with a def/class/import), because a code answer's numbers are
not a solution to perturb. A math solution has at least one stated computation ("a op b = c" or a GSM8K
annotation) before its final answer, or an explicit final answer ("####", a box, "the answer is").
Everything else is prose.
"""

from __future__ import annotations

from cuirass.marks.answer import find_final_answer
from cuirass.respond.perturb.code import code_regions
from cuirass.respond.perturb.equations import find_equations

CONTENT_TYPES = ("math", "code", "prose")


def content_type(text: str) -> str:
    """ "code", "math" or "prose"."""
    if code_regions(text):
        return "code"
    final = find_final_answer(text)
    if final is not None and (final.convention != "last_number" or find_equations(text, final.protected_start)):
        return "math"
    return "prose"
