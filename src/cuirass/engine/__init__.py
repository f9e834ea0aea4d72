"""The local engine: serve a Hugging Face causal LM in-process, token by token, with logits processors.

loader (model directory -> LoadedModel) · params (OpenAI request -> prompt ids + sampling parameters)
· sampling (the token loop: forward pass, processors, temperature, top-p) · decode (token ids -> text
deltas, stop strings) · generate (one choice, start to finish) · kv (key/value caches padded and stacked)
· batch (every running choice advances together). `cuirass.upstream.local` puts it
behind the Upstream interface. Needs the `engine` extra (torch, transformers, safetensors).
"""
