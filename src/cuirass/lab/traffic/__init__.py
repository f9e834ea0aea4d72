"""Seeded traffic generator: benign accounts from real conversations, parameterised attack campaigns.

Layout, one concept per module:
  sources        real prompts (ShareGPT users; GSM8K / HumanEval / seed tasks to harvest)
  clock, world   event time, habits, think times; the shared seed/window/models
  identity       account ids, addresses, user agents, payment fingerprints
  record         the event record built from a request
  conversation   a human's multi-turn dialogue with think times
  templates      reasoning-elicitation wording and paraphrase
  harvest        harvesting requests (reasoning, plain, rubric); agentic: tool-use episodes
  benign         ordinary people; backends: products relaying many end users
  campaigns      campaign parameters and presets; attacker: running a campaign
  generate       merge everything by time and stream it to a file with ground-truth labels
"""

from cuirass.lab.traffic.campaigns import PRESETS, CampaignSpec, parse_campaign
from cuirass.lab.traffic.generate import TrafficConfig, generate, labels_path

__all__ = ["PRESETS", "CampaignSpec", "TrafficConfig", "generate", "labels_path", "parse_campaign"]
