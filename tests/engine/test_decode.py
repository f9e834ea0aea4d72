"""Streaming detokenisation: no half characters, stop strings found across token boundaries."""

from __future__ import annotations

from cuirass.engine.decode import TextDeltas


class BytesTok:
    """Each token id is one byte; decoding shows U+FFFD for an unfinished UTF-8 character."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def feed(text: str, stop: tuple[str, ...] = ()) -> tuple[list[str], TextDeltas]:
    d = TextDeltas(BytesTok(), stop)
    out = []
    for b in text.encode():
        out.append(d.push(b))
        if d.stopped:
            break
    out.append(d.finish())
    return [o for o in out if o], d


def test_multibyte_characters_are_never_split() -> None:
    parts, d = feed("naïve café ≥ 3")
    assert "".join(parts) == d.answer == "naïve café ≥ 3"
    assert all("\ufffd" not in p for p in parts)


def test_stop_string_across_tokens_is_cut_and_never_sent() -> None:
    parts, d = feed("the answer is 42. END more text", stop=("END", "zz"))
    assert d.stopped and d.answer == "the answer is 42. "
    assert "".join(parts) == d.answer
    assert not any("E" in p for p in parts)
