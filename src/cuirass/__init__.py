"""Cuirass: an OpenAI-compatible gateway that detects, answers and proves LLM distillation."""

__version__ = "0.1.0"
