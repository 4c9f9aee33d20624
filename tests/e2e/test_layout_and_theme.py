"""Every page the README lists, in a real Chromium on a 390 px wide phone in the dark theme: it
answers 200, nothing makes the page scroll sideways, the dark theme is applied (the computed
background differs from the light theme's), and every visible piece of text is at least 4.5:1
against the background it sits on (WCAG AA), in both themes. The 403 and 404 pages get the same
checks, and the skip link is the first stop of the keyboard.

Each page builds only the data it needs (a model to train for the model pages, a finished cycle
for the cycle pages), so one slow page does not slow the others. Screenshots of each page (dark
and light at 390 px, dark at 1280 px) go to pytest-playwright's output folder (test-results/,
gitignored) to look at.
"""

from pathlib import Path

import pytest
from django.urls import reverse

from tests.e2e.chromium import VIEWPORT

pytestmark = [pytest.mark.e2e]

PHONE = {"width": 390, "height": 844}
AA = 4.5

# The contrast of each visible text against its effective background, computed in the page from
# Chromium's computed colours (WCAG 2 relative luminance). Text inside SVG charts (drawn on their
# own light paper), aria-hidden decoration, and text over a background image are left out: their
# background is not one colour.
CONTRAST_JS = """
(aa) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lin = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const over = (top, under) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const style = getComputedStyle(e);
      if (style.backgroundImage !== 'none' && !style.backgroundImage.startsWith('radial-gradient')) return null;
      const c = parse(style.backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let result = [255, 255, 255, 1];
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || seen.has(el)) continue;
    seen.add(el);
    if (el.closest('svg, [aria-hidden="true"], [hidden], script, style, option, .skiplink')) continue;
    const style = getComputedStyle(el);
    if (style.visibility !== 'visible' || el.getClientRects().length === 0) continue;
    if (parseFloat(style.opacity) < 1 || el.closest('[disabled]')) continue;  // disabled: exempt in WCAG
    const bg = background(el);
    if (!bg) continue;
    const fg = over(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < aa) {
      bad.push(`${ratio.toFixed(2)} ${el.tagName.toLowerCase()}.${[...el.classList].join('.')}` +
               ` "${node.textContent.trim().slice(0, 30)}" ${style.color} on rgb(${bg.slice(0, 3).join(', ')})`);
    }
  }
  return bad;
}
"""


# ---- Data: each page's own -------------------------------------------------------------------


def _labelled(project, labelers):
    """Digits with gold labels, three labelers who disagree on some (so the review queue has
    items), an unsure label with a note, and unlabelled digits (the pool a cycle samples)."""
    from annotation.models import Annotation
    from annotation.services import labeling
    from tests.integration.training_data import add_digit_items, label

    items = add_digit_items(project, 45) + add_digit_items(project, 45, gold=False, start=45)
    classes = list(project.label_classes.filter(is_ambiguity=False).order_by("order"))
    for i, item in enumerate(items[:30]):
        item.in_consistency_sample = True  # needs three labels: their disagreement is measured
        item.save(update_fields=["in_consistency_sample"])
        for j, user in enumerate(labelers):
            wrong = (i + j) % 4 == 0 and j > 0  # the second and third labelers slip now and then
            label(item, user, classes[(i + wrong) % 3])
    Annotation.objects.filter(item=items[1], labeler=labelers[0]).update(unsure=True, note="thin stroke, 1 or 7?")
    labeling.refresh_queue_state(project)
    return items


def _trained(project):
    from training import services

    version = services.create_version(project, trainer="sklearn_logreg")
    assert services.run_training(version.pk) == "ready"
    version.refresh_from_db()
    return version


def _cycle(project, mle):
    from active_learning import services

    cycle = services.launch(project, user=mle, enqueue=False, strategy="mix", batch_size=12)
    for step in services.STEPS:
        step(cycle.pk)
    cycle.refresh_from_db()
    assert cycle.status == "done", cycle.error
    return cycle


def _disputed_item(project):
    """An item whose labels disagree (see _labelled), so it is in the review queue."""
    return project.items.get(external_id="digit-0003").pk


# Each README page: who opens it, how to build its data and URL, and what must be on it (so the
# layout is checked with the page's content, not an empty state).
PAGES = {
    "login": (None, lambda p, users: reverse("login"), "#id_username"),
    "project list": ("mle", lambda p, users: reverse("frontend:project-list"), 'tr[data-project="birds"]'),
    "project": ("mle", lambda p, users: reverse("frontend:project-detail", args=[p.slug]), ".thumb img"),
    "labeling": ("lab1", lambda p, users: reverse("labeling:label", args=[p.slug]), "#lab-image"),
    "my work": ("lab1", lambda p, users: reverse("labeling:my-work", args=[p.slug]), "table.work-table"),
    "quality": ("sme", lambda p, users: reverse("quality:dashboard", args=[p.slug]), '[data-table="labelers"]'),
    "review queue": (
        "sme",
        lambda p, users: reverse("adjudication:queue", args=[p.slug]),
        '[data-testid="review-queue"] tbody a',
    ),
    "SME item": (
        "sme",
        lambda p, users: reverse("adjudication:item", args=[p.slug, _disputed_item(p)]),
        '[data-testid="item-labels"]',
    ),
    "classes": ("sme", lambda p, users: reverse("adjudication:classes", args=[p.slug]), "table.table--classes"),
    "guidelines": ("sme", lambda p, users: reverse("adjudication:guidelines", args=[p.slug]), "main h1"),
    "models": (
        "mle",
        lambda p, users: _trained(p) and reverse("training:model-list", args=[p.slug]),
        "table.table--models",
    ),
    "model detail": (
        "mle",
        lambda p, users: reverse("training:model-detail", args=[p.slug, _trained(p).short_id]),
        '[data-chart="confusion"] svg',
    ),
    "cycles": (
        "mle",
        lambda p, users: _cycle(p, users["mle"]) and reverse("cycles:cycle-list", args=[p.slug]),
        "table.c-table",
    ),
    "cycle detail": (
        "mle",
        lambda p, users: reverse("cycles:cycle-detail", args=[p.slug, _cycle(p, users["mle"]).number]),
        '[data-table="strategies"]',
    ),
}


@pytest.fixture
def site(transactional_db, project, labeler, labeler2, sme, mle):
    from annotation.models import Membership
    from tests.conftest import make_user

    labeler3 = make_user("lab3")
    Membership.objects.create(user=labeler3, project=project, role="labeler")
    _labelled(project, [labeler, labeler2, labeler3])
    return project, {"lab1": labeler, "lab2": labeler2, "lab3": labeler3, "sme": sme, "mle": mle}


def _context(browser, live_server, user, **options):
    """A browser context signed in as `user` (a session made by Django's test client)."""
    from django.conf import settings
    from django.test import Client

    context = browser.new_context(base_url=live_server.url, **options)
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
    context.set_default_timeout(10_000)
    return context


def _body_background(page):
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def _check_fits_dark_and_readable(page, name, out):
    """The checks of a page open at 390 px in the dark theme: no sideways scroll, the dark
    background, AA text; then the same page in the light theme: another background, AA text."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] > widths[1]:
        culprits = page.evaluate(
            """() => {
                 const clipped = (e) => {  // inside a box that scrolls or clips: does not widen the page
                   for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
                     if (getComputedStyle(a).overflowX !== 'visible') return true;
                   }
                   return false;
                 };
                 return [...document.querySelectorAll('body *')]
                   .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !clipped(e))
                   .slice(0, 12).map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}`);
               }"""
        )
        page.screenshot(path=out / "overflow.png", full_page=True)
        raise AssertionError(f"{name}: scrollWidth {widths[0]} > {widths[1]}; widest: {culprits}")

    dark = _body_background(page)
    assert dark == "rgb(15, 20, 25)", dark  # --bg of the dark theme
    assert page.evaluate(CONTRAST_JS, AA) == [], f"{name}, dark theme: text below {AA}:1"
    page.screenshot(path=out / "dark-390.png", full_page=True)

    page.emulate_media(color_scheme="light")
    page.evaluate("Promise.all(document.getAnimations().map((a) => a.finished))")  # colour transitions
    light = _body_background(page)
    assert light != dark and light == "rgb(245, 246, 248)", light
    assert page.evaluate(CONTRAST_JS, AA) == [], f"{name}, light theme: text below {AA}:1"
    page.screenshot(path=out / "light-390.png", full_page=True)


@pytest.mark.parametrize("name", list(PAGES))
def test_page_fits_a_phone_in_the_dark_theme_with_readable_text(name, browser, live_server, site, output_path):
    project, users = site
    who, build, content = PAGES[name]
    url = build(project, users)
    user = users[who] if who else None
    out = Path(output_path)

    context = _context(browser, live_server, user, viewport=PHONE, color_scheme="dark")
    page = context.new_page()
    response = page.goto(url)
    assert response.status == 200, (name, url, response.status)
    page.wait_for_load_state("networkidle")
    assert page.locator(content).first.is_visible(), f"{name}: {content} missing"
    _check_fits_dark_and_readable(page, name, out)
    context.close()

    context = _context(browser, live_server, user, viewport=VIEWPORT, color_scheme="dark")
    page = context.new_page()
    assert page.goto(url).status == 200
    page.wait_for_load_state("networkidle")
    page.screenshot(path=out / "dark-1280.png", full_page=True)
    context.close()


def test_the_skip_link_is_the_first_stop_and_moves_focus_to_the_main_content(browser, live_server, site):
    _, users = site
    context = _context(browser, live_server, users["mle"], viewport=PHONE)
    page = context.new_page()
    page.goto(reverse("frontend:project-list"))
    link = page.get_by_role("link", name="Skip to main content")
    assert link.bounding_box()["y"] < 0  # out of sight until focused
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    assert link.bounding_box()["y"] >= 0  # visible while focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    context.close()


@pytest.mark.parametrize("case", ["403", "404"])
def test_the_error_pages_fit_a_phone_in_the_dark_theme(case, browser, live_server, site, outsider, output_path):
    """A labeler opening the review queue gets the 403 page; a non-member opening the project,
    the 404 page; both with the site's look and the same layout and contrast checks."""
    project, users = site
    user, heading = (
        (users["lab1"], "You don't have access to this page") if case == "403" else (outsider, "Page not found")
    )
    url = reverse("adjudication:queue", args=[project.slug])
    context = _context(browser, live_server, user, viewport=PHONE, color_scheme="dark")
    page = context.new_page()
    response = page.goto(url)
    assert response.status == int(case)
    assert page.get_by_role("heading", level=1).inner_text() == heading
    _check_fits_dark_and_readable(page, f"{case} page", Path(output_path))
    context.close()
