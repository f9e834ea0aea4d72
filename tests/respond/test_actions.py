"""The action names are defined once (cuirass.actions); the policy schema, the event log and the defense
registries agree with that list."""

from __future__ import annotations

import pytest

from cuirass.actions import ACTIONS, EVENT_ACTIONS, GATEWAY_ACTIONS, LOGIT_ACTIONS, TEXT_ACTIONS
from cuirass.config import PolicyConfig
from cuirass.events.record import ACTIONS as RECORDED
from cuirass.respond.base import DEFENSES, TextDefense, register
from cuirass.respond.logit.base import LOGIT_DEFENSES
from cuirass.respond.responder import load_defenses


def test_every_text_and_logit_action_has_its_defense_and_nothing_else_registers() -> None:
    load_defenses()
    assert set(DEFENSES) == set(TEXT_ACTIONS)
    assert set(LOGIT_DEFENSES) == set(LOGIT_ACTIONS)
    assert set(ACTIONS) == set(TEXT_ACTIONS) | set(GATEWAY_ACTIONS) | set(LOGIT_ACTIONS)


def test_a_defense_under_an_unlisted_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of the names"):

        @register
        class Nameless(TextDefense):
            name = "sparkle"

            def transform(self, text, ctx):  # type: ignore[no-untyped-def]
                return text


def test_the_policy_schema_and_the_event_log_use_the_same_names() -> None:
    assert RECORDED == EVENT_ACTIONS == ("pass", *ACTIONS)
    PolicyConfig.model_validate({"default_actions": list(ACTIONS[:1]), "shadow_actions": list(ACTIONS)})
    with pytest.raises(ValueError):
        PolicyConfig.model_validate({"default_actions": ["sparkle"]})
