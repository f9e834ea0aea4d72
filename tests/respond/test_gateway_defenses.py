"""Text defenses through the real gateway and the openai client, with the default policy."""

from __future__ import annotations

import httpx
import openai

from cuirass.keyring import Keyring
from cuirass.marks.text.detect import detect
from tests.conftest import ADMIN_KEY, Gateway, MockUpstream

MESSAGES = [{"role": "user", "content": "Explain step by step how compound interest works."}]


def test_flagged_account_gets_defended_text_same_in_stream(gateway: Gateway, mock: MockUpstream) -> None:
    direct = openai.OpenAI(base_url=mock.base_url, api_key="x", max_retries=0)
    original = direct.chat.completions.create(model="mock-model", messages=MESSAGES, max_tokens=300)
    original_text = original.choices[0].message.content or ""
    c = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)
    assert (
        c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=300).choices[0].message.content
        == original_text
    )  # unflagged: byte for byte
    r = httpx.put(
        gateway.base_url.removesuffix("/v1") + "/admin/accounts/tester/verdict",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        json={"verdict": "flag", "reason": "e2e", "by": "pytest"},
    )
    assert r.status_code == 200
    try:
        whole = c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=300)
        text = whole.choices[0].message.content or ""
        streamed = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=300, stream=True)
            if ch.choices
        )
        again = c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=300).choices[0].message.content
    finally:
        httpx.put(
            gateway.base_url.removesuffix("/v1") + "/admin/accounts/tester/verdict",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            json={"verdict": "clear", "reason": "e2e done", "by": "pytest"},
        )
    assert text != original_text
    assert streamed == text == again  # same transform streaming or not, and on a repeat
    rows = [e for e in gateway.events() if e["account"] == "tester" and e["action"] != "pass"]
    assert rows and rows[-1]["actions"] == ["strip_reasoning", "perturb", "canary", "watermark", "signature"]
    cohort = rows[-1]["cohort"]
    keyring = Keyring.for_data_dir(gateway.data_dir)
    own = detect(text, keyring.key("watermark", cohort))
    other = detect(text, keyring.key("watermark", "c000" if cohort != "c000" else "c001"))
    assert own.n_scored > 0 and own.p_value < other.p_value
    assert own.p_value < 0.01
