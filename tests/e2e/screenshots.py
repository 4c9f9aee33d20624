"""Take the README screenshots (1280x800) of a running Concord: login page, project list, project page.

Not a test: run it by hand against a server that holds the data to show, e.g. after `make run`
(which loads the demo):

    .venv/bin/python -m tests.e2e.screenshots --base-url http://127.0.0.1:8000 \\
        --username mle --password PASSWORD --project digits --out docs/screenshots

It logs in through the form like a person would, so it needs a real account's password.
"""

import argparse
import os
import sys
from pathlib import Path

from tests.e2e.chromium import LAUNCH_ARGS, VIEWPORT

# Playwright must never fetch a browser of its own.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def take(base_url, username, password, project, out, full_page=False):
    from playwright.sync_api import sync_playwright

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base_url = base_url.rstrip("/")
    shots = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**LAUNCH_ARGS)
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
        page.goto(f"{base_url}/login/")
        page.screenshot(path=out / "login.png", full_page=full_page)
        shots.append(out / "login.png")

        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.press("#id_password", "Enter")
        page.wait_for_url(f"{base_url}/")
        page.screenshot(path=out / "project-list.png", full_page=full_page)
        shots.append(out / "project-list.png")

        page.goto(f"{base_url}/projects/{project}/")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=out / "project.png", full_page=full_page)
        shots.append(out / "project.png")
        browser.close()
    return shots


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--project", required=True, help="slug of the project page to capture")
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--full-page", action="store_true", help="capture whole pages, not the 1280x800 viewport")
    args = parser.parse_args(argv)
    for path in take(args.base_url, args.username, args.password, args.project, args.out, args.full_page):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
