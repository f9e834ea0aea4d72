"""A suspect corpus from a file: one JSON object per line with a `text` field, or one text per line.

JSON lines may also carry each text's `prompt` (a string): when every line does, channels that need the
question an answer was given to (the answer signature) can score the corpus.

The format is decided by the first non-empty line: a JSON object means JSON lines (every line must then
be an object with a string `text`), anything else means plain text. The file's SHA-256 goes into the
report so a third party can check they re-run the audit on the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path


class CorpusError(ValueError):
    """The file cannot be read as a corpus; the message names the line."""


@dataclasses.dataclass(frozen=True, slots=True)
class Corpus:
    path: str
    sha256: str
    n_bytes: int
    format: str  # "jsonl" or "lines"
    texts: tuple[str, ...]
    prompts: tuple[str, ...] | None = None  # one per text, when every JSON line carries a string `prompt`

    def describe(self, role: str) -> dict[str, object]:
        return {
            "role": role,
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.n_bytes,
            "format": self.format,
            "n_texts": len(self.texts),
            "prompts": self.prompts is not None,
        }


def _is_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def read_corpus(path: Path) -> Corpus:
    """Read and hash a corpus file; raise CorpusError with the line number on bad input."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise CorpusError(f"{path}: empty corpus (no texts)")
    texts: list[str] = []
    prompts: list[str | None] = []
    if _is_object(first):
        fmt = "jsonl"
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{no}: invalid JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise CorpusError(f"{path}:{no}: expected a JSON object with a 'text' field")
            if not isinstance(obj.get("text"), str):
                raise CorpusError(f"{path}:{no}: missing 'text' (a string)")
            texts.append(obj["text"])
            prompts.append(obj["prompt"] if isinstance(obj.get("prompt"), str) else None)
    else:
        fmt = "lines"
        texts = [ln for ln in lines if ln.strip()]
    asked = tuple(p for p in prompts if p is not None)
    known = asked if prompts and len(asked) == len(texts) else None
    return Corpus(str(path), hashlib.sha256(raw).hexdigest(), len(raw), fmt, tuple(texts), known)
