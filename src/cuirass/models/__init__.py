"""Model checkpoints shipped inside the package, in Hugging Face format (trained by `cuirass lab train-reference`),
and the task they were trained on.

- reference/: the built-in principal model, a small decoder trained on procedural arithmetic word problems;
- decoy/: an early snapshot of the same training run, same format and tokenizer, clearly less accurate;
- problems.py: the task, seeded multi-step arithmetic word problems with worked solutions (a `<think>` block,
  then the answer), split train/test by content;
- everyday.py: the same arithmetic asked the way people type it, with held-out phrasings, and the replies to
  anything that is not arithmetic;
- corpus.py: problems as chat conversations and training batches (loss on the assistant's turn; needs torch).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference"
DECOY = HERE / "decoy"
