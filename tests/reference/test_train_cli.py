"""`cuirass lab train-reference --quick` writes Hugging Face directories that load with plain `transformers`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from cuirass.cli.lab import lab


def test_quick_training_writes_loadable_directories(tmp_path: Path) -> None:
    result = CliRunner().invoke(lab, ["train-reference", "--quick", "--no-progress", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["reference"]["step"] == 8 and summary["decoy"]["step"] == 4
    assert (tmp_path / "summary.json").is_file()
    for name in ("reference", "decoy"):
        path = tmp_path / name
        assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Ana has 3 apples."}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert out.shape[1] > ids["input_ids"].shape[1]
