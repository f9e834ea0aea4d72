"""Responding to suspected extraction: the policy that picks actions and the defenses that carry them out."""
