"""Screenshots of the operator console (`make screenshots`): docs/console-overview.png, console-account.png,
console-campaign.png.

Runs the console tests' world (a real `cuirass serve` in front of the mock upstream, a ring of three accounts
on one card, flagged mid-way), lets the ring go on after its flag so that the policy's actions show, then
drives Debian's Chromium through the three views with Playwright.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ADMIN_KEY, MockUpstream  # noqa: E402
from tests.gateway.console_world import ADMIN, CAMPAIGN, PROMPT, RING, root, seed, start  # noqa: E402

OUT = ROOT / "docs"


def main() -> None:
    mock = MockUpstream()
    with tempfile.TemporaryDirectory() as tmp:
        gw = start(mock, Path(tmp) / "gw")
        try:
            seeded = seed(gw)
            time.sleep(1.5)  # the gateway's verdict cache reads the ring's flags
            with httpx.Client(base_url=root(gw), headers=ADMIN) as a:
                keys = {n: a.post(f"/admin/accounts/{n}/keys", json={"name": "k2"}).json()["key"] for n in RING}
                a.put("/admin/accounts/ring-2/verdict", json={"verdict": "flag", "reason": "ticket 81", "by": "alice"})
            for i, key in enumerate(keys.values()):
                c = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
                for j in range(4):
                    c.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": PROMPT.format(a=i, b=j)}]
                    )
            ordinary = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
            for text in ("hello, how are you?", "write me a haiku about rain", "what is the capital of Peru?"):
                ordinary.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
            gw.events(expect=seeded["total"] + 15)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(root(gw) + "/dashboard")
                page.fill("#key", ADMIN_KEY)
                page.fill("#who", "alice")
                page.click("#go")
                page.wait_for_selector("text=/Flagged accounts \\(\\d+\\)/")
                page.screenshot(path=OUT / "console-overview.png", full_page=True)
                page.goto(root(gw) + "/dashboard#/account/ring-1")
                page.wait_for_selector("#account-name")
                page.click("button:has-text('show ')")
                page.screenshot(path=OUT / "console-account.png", full_page=True)
                page.goto(root(gw) + f"/dashboard#/campaign/{CAMPAIGN}")
                page.wait_for_selector("#campaign-name")
                page.screenshot(path=OUT / "console-campaign.png", full_page=True)
                browser.close()
        finally:
            gw.stop()
            mock.stop()
    for name in ("overview", "account", "campaign"):
        print(OUT / f"console-{name}.png")


if __name__ == "__main__":
    main()
