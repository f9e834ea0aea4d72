"""`signature`: a mark built to be learned, for flagged traffic: the final-answer sentence opens with the
lead-in the cohort's key chooses for the prompt's last word ("Hence the answer is 42."). The answer, and
everything a checker reads, stay as they were. See `cuirass.marks.signature` for why a student learns it
and for the exact test an audit runs on a suspect's answers.
"""

from __future__ import annotations

from cuirass.marks.signature import embed
from cuirass.respond.base import DefenseContext, TextDefense, register


@register
class SignatureDefense(TextDefense):
    name = "signature"

    def transform(self, text: str, ctx: DefenseContext) -> str:
        return embed(text, ctx.prompt, ctx.key)
