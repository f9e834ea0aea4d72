"""The console in a real browser: Playwright driving Debian's Chromium against `cuirass serve`.

Logs in with the admin key, flags, clears and allowlists an account and takes one decision for a whole
campaign by clicking, and checks that the admin API and the audit log recorded each with who and why;
checks that markup in prompts, names and reasons shows as text, and that prompts stay hidden until asked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, Gateway, MockUpstream
from tests.gateway import console_world
from tests.gateway.console_world import ADMIN, CAMPAIGN, HOSTILE, RING, audit_records, root

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CUIRASS_CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):  # .ci/run installs it, and sets CUIRASS_REQUIRE_BROWSER so that CI cannot skip
    if os.environ.get("CUIRASS_REQUIRE_BROWSER"):
        raise RuntimeError(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def world(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, dict[str, Any]]]:
    yield from console_world.world(mock, tmp_path_factory.mktemp("console-browser"))


@contextlib.contextmanager
def console(gw: Gateway) -> Iterator[Any]:
    """Chromium on the console, logged in as alice; fails the test on any script error or stray dialog."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("dialog", lambda d: errors.append(f"unexpected {d.type}: {d.message}") or d.dismiss())
        pg.goto(root(gw) + "/dashboard")
        pg.fill("#key", ADMIN_KEY)
        pg.fill("#who", "alice")
        pg.click("#go")
        pg.wait_for_selector("text=/Flagged accounts \\(\\d+\\)/")
        yield pg
        assert errors == []
        browser.close()


@pytest.fixture
def page(world: tuple[Gateway, dict[str, Any]]) -> Iterator[Any]:
    with console(world[0]) as pg:
        yield pg


def decide(page: Any, button: str, reason: str) -> None:
    page.click(button)
    page.fill("#ask-reason", reason)
    page.click("#ask-ok")


def verdict(gw: Gateway, account: str) -> dict[str, Any]:
    v: dict[str, Any] = httpx.get(root(gw) + f"/admin/accounts/{account}", headers=ADMIN).json()["verdict"]
    return v


def test_login_keeps_the_key_out_of_url_cookies_and_storage(page: Any) -> None:
    assert ADMIN_KEY not in page.url
    assert page.context.cookies() == []
    stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert ADMIN_KEY not in stored
    page.reload()
    assert page.is_visible("#login") and not page.is_visible("#main")  # kept in memory only: a reload asks again


def test_flag_clear_allowlist_by_clicking(world: tuple[Gateway, dict[str, Any]], page: Any, tmp_path: Path) -> None:
    gw, _ = world
    page.goto(root(gw) + "/dashboard#/account/tester")  # not flagged, so not on the overview: go by address
    page.wait_for_selector("#verdict-state")
    assert page.text_content("#verdict-state") == "not flagged"
    decide(page, "button[data-verdict=flag]", "ticket 7: template harvesting")
    page.wait_for_selector("#verdict-state:text-is('flagged')")
    assert verdict(gw, "tester")["override"] | {"ts": 0} == {
        "verdict": "flag",
        "by": "alice",
        "reason": "ticket 7: template harvesting",
        "ts": 0,
    }
    decide(page, "button[data-verdict=clear]", "false alarm, a tutor")
    page.wait_for_selector("#verdict-state:text-is('not flagged')")
    assert verdict(gw, "tester")["override"]["verdict"] == "clear"
    page.click("button[data-verdict=allowlist]")
    page.click("#ask button[value=cancel]")  # cancelled: nothing recorded
    assert verdict(gw, "tester")["override"]["verdict"] == "clear"
    decide(page, "button[data-verdict=allowlist]", "contracted evaluator")
    page.wait_for_selector("#override:has-text('allowlist by alice: contracted evaluator')")
    history = verdict(gw, "tester")["history"]
    assert [(h["verdict"], h["by"], h["reason"]) for h in history] == [
        ("flag", "alice", "ticket 7: template harvesting"),
        ("clear", "alice", "false alarm, a tutor"),
        ("allowlist", "alice", "contracted evaluator"),
    ]
    recs = [r["data"] for r in audit_records(gw, tmp_path) if r["kind"] == "verdict_override"]
    assert [(d["account"], d["verdict"], d["by"], d["reason"]) for d in recs if d["account"] == "tester"] == [
        ("tester", h["verdict"], h["by"], h["reason"]) for h in history
    ]


def test_campaign_action_applies_to_every_member(
    world: tuple[Gateway, dict[str, Any]], page: Any, tmp_path: Path
) -> None:
    gw, _ = world
    page.click(f"a[href='#/campaign/{CAMPAIGN}']")
    page.wait_for_selector("#campaign-name")
    assert page.locator("svg[aria-label='campaign links'] circle").count() == 3
    assert page.locator("svg[aria-label='campaign links'] line").count() == 3
    assert page.is_visible("td:text-is('card')") and page.is_visible("td:text-is('pf_ring')")
    assert page.is_visible(".card:has-text('answers after flagged') b:text-is('10')")
    decide(page, "button[data-verdict=clear]", "reviewed: a university lab")
    page.wait_for_selector("tr[data-account=ring-3] td:has-text('clear by alice')")
    for name in RING:
        o = verdict(gw, name)["override"]
        assert (o["verdict"], o["by"], o["reason"]) == (
            "clear",
            "alice",
            f"campaign {CAMPAIGN}: reviewed: a university lab",
        )
    recs = [r["data"] for r in audit_records(gw, tmp_path) if r["kind"] == "verdict_override"]
    assert [(d["account"], d["verdict"], d["by"]) for d in recs[-3:]] == [(n, "clear", "alice") for n in RING]


def test_hostile_text_shows_as_text_and_prompts_are_redacted(world: tuple[Gateway, dict[str, Any]], page: Any) -> None:
    page.goto(root(world[0]) + "/dashboard#/account/ring-1")
    page.wait_for_selector("#account-name:text-is('ring-1')")
    assert page.is_visible("text=ring-1 <b>bold</b>")  # the account's name, with its markup as text
    assert page.is_visible("text=asks for step-by-step reasoning <i>often</i>")
    assert page.locator("td.prompt:has-text('[redacted]')").count() == 7 and "onerror" not in page.content()
    page.click("#prompts")
    page.wait_for_selector("td.prompt pre")
    cell = page.locator("td.prompt pre", has_text="what is 2 + 2?")
    assert cell.text_content() == HOSTILE
    assert page.locator("td.prompt img, td.prompt script, #view img, #view script").count() == 0
    assert page.evaluate("() => window.pwned") is None
    page.click("button:has-text('show ')")  # the requests behind the strongest reason (step by step) are highlighted
    assert page.locator("tr.hit").count() == 6
    assert page.locator("tr.hit", has_text="what is 2 + 2?").count() == 0


def test_shadow_mode_shows_what_would_have_been_done(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(
        detection={"enabled": False},
        policy={"shadow": True, "bands": [{"name": "flagged", "when": {"flagged": True}, "actions": ["block"]}]},
    )
    httpx.put(root(gw) + "/admin/accounts/tester/verdict", headers=ADMIN, json={"verdict": "flag", "reason": "t"})
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    rid = gw.events(expect=1)[0]["request_id"]
    with console(gw) as page:
        assert page.is_visible(".card:has-text('shadow decisions') b:text-is('1')")
        page.click("a[href='#/account/tester']")
        row = page.locator(f"tr[data-request='{rid}']")
        row.wait_for()
        assert [row.locator("td").nth(i).text_content() for i in (3, 4, 5)] == ["200", "pass", "block"]
        assert page.is_visible("text=Shadow mode")
