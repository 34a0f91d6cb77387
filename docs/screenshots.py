"""Screenshots of the main pages for the README: `make screenshots`.

Serves the portal from the demo database (DATABASE_URL, default db.sqlite3;
`make demo` fills it) with Django's development server on a spare port, signs
in as the demo reseller in Debian's Chromium and saves PNGs in docs/screenshots/.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
USERNAME, PASSWORD = "reseller", "reseller-demo-2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"the server at {url} did not start")


def shoot(page, base: str) -> list[str]:
    # The demo's Cloudline Voice answers at its own domain (browsers send
    # *.localhost to this machine): its sign-in page, before anyone signs in.
    page.set_viewport_size({"width": 900, "height": 520})
    page.goto(base.replace("127.0.0.1", "cloudline.localhost") + "/accounts/login/")
    page.screenshot(path=str(OUT / "branded-sign-in.png"))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/reports/t/**")
    reseller = page.url.split("?")[0]
    shots = [
        ("reseller-report", f"{reseller}?category=communications"),
        ("processing-by-activity", f"{reseller}?category=processing&stack=dimension"),
        ("records", f"{reseller}records/"),
        ("reseller-statements", f"{reseller}statements/"),
    ]
    page.goto(shots[0][1])
    org = page.locator("#children-table tbody a").first.get_attribute("href")
    shots.insert(1, ("organization-report", f"{base}{org}?category=communications"))
    saved = ["docs/screenshots/branded-sign-in.png"]
    for name, url in shots:
        page.goto(url)
        if page.locator("#usage-chart").count():
            # A selector, not a script: the pages' Content-Security-Policy forbids eval.
            page.wait_for_selector("#usage-chart[data-drawn]", state="attached")
        path = OUT / f"{name}.png"
        # A records page is a hundred rows long: its first screen tells the story.
        page.screenshot(path=str(path), full_page=not name.startswith("records"))
        saved.append(str(path.relative_to(ROOT)))
    return saved


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "DJANGO_DEBUG": "1", "DJANGO_HTTPS": "0"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for path in shoot(page, base):
                print(path)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
