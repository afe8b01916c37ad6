"""A person approving in a real browser: headless Chromium (Debian's, at
$WARDEN_CHROMIUM or /usr/bin/chromium) driven by Playwright opens the approval page,
signs in as the approver, checks that the page shows exactly the request, and
approves. Driven by crates/warden-server/tests/python_clients.rs, which then retries
the agent's decision with the approval id. Exits non-zero on the first failed
expectation.
"""

import json
import os
import sys

from playwright.sync_api import sync_playwright

cfg = json.load(sys.stdin)
chromium = os.environ.get("WARDEN_CHROMIUM", "/usr/bin/chromium")


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
    page = browser.new_page()
    page.goto(cfg["url"])
    check(page.locator("#signin").is_visible(), "the page asks the approver to sign in first")
    page.fill("#username", cfg["user"])
    page.fill("#password", cfg["password"])
    page.click("#signin")
    page.wait_for_selector("#approve")
    check(page.inner_text("#me") == f"user:{cfg['user']}", "signed in as the approver")
    check(page.inner_text("#agent") == f"agent:{cfg['agent']}", "the page names the agent")
    check(page.inner_text("#user") == f"user:{cfg['on_behalf_of']}", "and the user it acts for")
    check(page.inner_text("#action") == cfg["action"], "and the action")
    check(page.inner_text("#resource") == cfg["resource"], "and the resource")
    context = json.loads(page.inner_text("#context"))
    check(context == cfg["context"], f"and the context: {context}")
    check(page.inner_text("#status") == "pending", "the request is pending")
    # The session cookie is not readable by scripts on the page.
    check(page.evaluate("document.cookie") == "", "the session cookie is HttpOnly")
    page.fill("#reason", "checked the invoice")
    page.click("#approve")
    page.wait_for_selector("#status, #error")
    check(page.locator("#error").count() == 0, f"refused: {page.content()}")
    check(page.inner_text("#status") == "granted", f"granted: {page.content()}")
    print("approved in Chromium", browser.version)
    browser.close()
