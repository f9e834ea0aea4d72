"""Token ids to text deltas for streaming, with OpenAI stop strings.

A token may end inside a multi-byte character (decoding shows U+FFFD) or inside a stop string, so
the text is released only when it is settled: never a half character, and never the last
len(longest stop) - 1 characters until it is clear they do not start a stop string. The answer is cut
before the first stop string, which is not sent (as OpenAI does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TextDeltas:
    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self._hold = max((len(s) for s in self.stop), default=1) - 1
        self.ids: list[int] = []
        self.text = ""  # decoded so far (settled or not)
        self.sent = 0  # characters of `text` already released
        self.stopped = False  # a stop string was found; nothing more will be released

    def push(self, token_id: int) -> str:
        """Add a token; return the newly settled text (possibly empty)."""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""  # a character split across tokens: wait for the rest
        self.text = text
        if self.stop:
            start = max(0, self.sent - self._hold)
            hits = [i for i in (text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                self.stopped = True
                return self._release(min(hits))
        return self._release(max(self.sent, len(text) - self._hold))

    def finish(self) -> str:
        """The rest of the text, at the end of generation (no stop string came)."""
        if self.stopped:
            return ""
        return self._release(len(self.text))

    def _release(self, end: int) -> str:
        out = self.text[self.sent : end]
        self.sent = max(self.sent, end)
        return out

    @property
    def answer(self) -> str:
        """All text released so far: the answer, once generation is over."""
        return self.text[: self.sent]
