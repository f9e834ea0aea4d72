"""Peers scored on the same traffic as Cuirass, each in its own virtual environment (see PEERS.md)."""
