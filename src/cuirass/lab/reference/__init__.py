"""The built-in reference model's training and evaluation (`cuirass lab train-reference`).

Its task (the word problems, and their chat and token form) lives with the shipped checkpoints, in
cuirass.models (problems, corpus), because the product uses it too (antidistill's default task, the
reference probes of an endpoint audit).

- tokenizer: byte-level BPE with one token per digit and the chat template, saved in Hugging Face format;
- train: trains the reference model and snapshots the decoy, writes both as Hugging Face directories;
- evaluate: batched generation and final-answer accuracy on held-out problems (reused by the lab).
"""
