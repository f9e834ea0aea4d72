"""Per-key request and token limits, kept in the process, in a SQLite file, or in Redis (docs/fleet.md)."""
