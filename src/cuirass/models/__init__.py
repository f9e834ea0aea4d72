"""Model checkpoints shipped inside the package, in Hugging Face format (trained by `cuirass lab train-reference`).

- reference/: the built-in principal model, a small decoder trained on procedural arithmetic word problems;
- decoy/: an early snapshot of the same training run, same format and tokenizer, clearly less accurate.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference"
DECOY = HERE / "decoy"
