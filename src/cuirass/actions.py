"""The actions the gateway can take on a request: the one list of their names.

Each name is written once, under the part of Cuirass that carries it out; everything else derives from
these types (the policy's config schema, the event log's `action` values, the responder's split between
text rewrites, sampling-time processors and the gateway's own actions). A defense registers under one of
these names (`respond.base.DEFENSES`, `respond.logit.base.LOGIT_DEFENSES`), and the registries refuse a
name that is not listed here, so a new defense adds its name below and its class in one folder.
"""

from __future__ import annotations

from typing import Literal, get_args

TextAction = Literal[
    "watermark", "strip_reasoning", "perturb", "canary", "signature"
]  # rewrite the answer (respond/defenses)
GatewayAction = Literal["decoy", "throttle", "block"]  # carried out by the gateway itself (gateway/proxy.py)
LogitAction = Literal["logit_watermark", "antidistill"]  # act while sampling: local upstreams only (respond/logit)
Action = Literal[TextAction, GatewayAction, LogitAction]

TEXT_ACTIONS: tuple[str, ...] = get_args(TextAction)
GATEWAY_ACTIONS: tuple[str, ...] = get_args(GatewayAction)
LOGIT_ACTIONS: tuple[str, ...] = get_args(LogitAction)
ACTIONS: tuple[str, ...] = get_args(Action)  # every action a policy may name

TERMINAL = ("block", "throttle")  # actions that answer instead of the model, so they come last in a band
PASS = "pass"  # the event's `action` when none was carried out
EVENT_ACTIONS: tuple[str, ...] = (PASS, *ACTIONS)  # every value of the event log's `action` field
