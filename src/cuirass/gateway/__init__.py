"""The HTTP surface: the OpenAI-compatible API, health, metrics, the admin API and the dashboard (app.py wires them)."""
