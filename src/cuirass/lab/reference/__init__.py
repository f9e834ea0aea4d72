"""The built-in reference model: its task, corpus, tokenizer, training and evaluation (`cuirass lab train-reference`).

- problems: seeded multi-step arithmetic word problems with worked solutions, split train/test by content;
- corpus: problems as chat conversations and training batches (loss on the assistant's turn);
- tokenizer: byte-level BPE with one token per digit and the chat template, saved in Hugging Face format;
- train: trains the reference model and snapshots the decoy, writes both as Hugging Face directories;
- evaluate: batched generation and final-answer accuracy on held-out problems (reused by the lab).
"""
