"""How the end-to-end tests and the screenshot script start a browser: Debian's Chromium, never
one that Playwright downloads. Shared so both start it the same way."""

CHROMIUM = "/usr/bin/chromium"

LAUNCH_ARGS = {
    "executable_path": CHROMIUM,
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
    ],
    "headless": True,
}

VIEWPORT = {"width": 1280, "height": 800}
