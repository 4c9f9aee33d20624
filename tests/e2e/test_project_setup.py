"""Setting up a project entirely in the browser, in a real Chromium: an MLE creates a text
project, uploads a CSV (with the upload's progress bar), creates a labeler's account (password
shown once); the labeler logs in with it and labels three items by keyboard; the MLE opens the
item browser and finds those three items labelled.

Saves a screenshot of the item browser in pytest-playwright's output folder.
"""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.e2e]

CSV = "external_id,text\n" + "".join(
    f"r{i},Review number {i}: {'good' if i % 2 else 'bad'} film\n" for i in range(1, 9)
)


@pytest.fixture
def lead(transactional_db):
    """An MLE of another project: MLEs may create projects (annotation.access.can_create_projects)."""
    from annotation.models import Membership
    from annotation.services.projects import create_project
    from tests.conftest import make_user

    user = make_user("lead")
    first = create_project(slug="first", name="First", data_kind="image", classes=["a", "b"])
    Membership.objects.create(user=user, project=first, role="mle")
    return user


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Username")).to_be_visible()


def test_an_mle_sets_up_a_project_and_sees_a_new_labelers_work(page, base_url, lead, tmp_path, output_path):
    from annotation.models import Annotation

    # 1. The MLE creates the project.
    log_in(page, "lead")
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/new-project/")
    page.get_by_label("Name", exact=True).fill("Film reviews")
    page.get_by_label("Text", exact=True).check()
    page.get_by_label("Classes, one per line").fill("good = g\nbad = g")
    page.get_by_role("button", name="Create project").click()
    # The service's message, under the classes field; what was typed is kept.
    expect(page.locator("#classes-error")).to_contain_text("key 'g' is given to two classes")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Film reviews")
    page.screenshot(path=Path(output_path) / "create_error.png", full_page=True)
    page.get_by_label("Classes, one per line").fill("good = g\nbad = b")
    page.get_by_label("Ambiguity classes").fill("unclear")
    page.get_by_label("Overlap k").fill("1")
    page.get_by_label("Consistency fraction").fill("0")
    page.get_by_role("button", name="Create project").click()
    expect(page).to_have_url(f"{base_url}/projects/film-reviews/")
    expect(page.get_by_role("heading", name="Film reviews", level=1)).to_be_visible()

    # 2. Uploads a CSV through the upload page (XHR with a progress bar), sees the report.
    page.get_by_test_id("upload-link").click()
    csv_path = Path(tmp_path) / "reviews.csv"
    csv_path.write_text(CSV)
    page.get_by_label("File", exact=True).set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload").click()
    report = page.get_by_test_id("upload-report")
    expect(report).to_contain_text("Uploaded reviews.csv")
    expect(report).to_contain_text("8 created")
    expect(page).to_have_url(re.compile(r"/projects/film-reviews/upload/\?batch=\d+$"))

    # 3. Creates the labeler's account; the password is shown once.
    page.goto("/projects/film-reviews/members/")
    form = page.get_by_test_id("create-account-form")
    form.get_by_label("New username").fill("newlabeler")
    form.get_by_label("Role").select_option("labeler")
    form.get_by_role("button", name="Create account").click()
    expect(page.get_by_test_id("new-username")).to_have_text("newlabeler")
    password = page.get_by_test_id("new-password").inner_text().strip()
    assert len(password) >= 20 and password != PASSWORD
    expect(page.locator('[data-member="newlabeler"] [data-cell="role"]')).to_have_text("Labeler")
    page.screenshot(path=Path(output_path) / "members.png", full_page=True)
    log_out(page)

    # 4. The labeler logs in with it and labels three items by keyboard.
    log_in(page, "newlabeler", password)
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/projects/film-reviews/label/")
    expect(page.locator("#lab-text")).not_to_be_empty()
    labelled = []
    for n, key in enumerate(["g", "b", "g"], start=1):
        expect(page.locator("#lab-work")).to_have_attribute("data-next", "ready")
        labelled.append(page.locator("#lab-text").inner_text())
        page.keyboard.press(key)
        expect(page.locator("#lab-done")).to_have_text(str(n))
    log_out(page)
    mine = Annotation.objects.filter(labeler__username="newlabeler", is_current=True)
    assert mine.count() == 3

    # 5. The MLE opens the item browser: those three items are labelled (complete: overlap 1).
    log_in(page, "lead")
    page.goto("/projects/film-reviews/")
    page.get_by_test_id("items-link").click()
    expect(page.locator(".ib-tile")).to_have_count(8)
    page.get_by_label("Status").select_option("complete")
    page.get_by_role("button", name="Filter").click()
    tiles = page.locator(".ib-tile")
    expect(tiles).to_have_count(3)
    expected = {a.item.external_id: a.labels.get().name for a in mine.select_related("item")}
    assert sorted(tiles.evaluate_all("els => els.map(e => e.dataset.item)")) == sorted(expected)
    texts = tiles.locator(".ib-tile__text").all_inner_texts()
    assert sorted(t.strip() for t in texts) == sorted(t.strip() for t in labelled)
    page.screenshot(path=Path(output_path) / "item_browser.png", full_page=True)

    # 6. The MLE exports JSONL with every labeler's labels: the file holds those three labels.
    page.goto("/projects/film-reviews/")
    page.get_by_test_id("export-link").click()
    page.locator('input[name="format"][value="jsonl"]').check()
    page.locator('input[name="include_labels"]').check()
    page.get_by_test_id("export-submit").click()
    with page.expect_download() as download:
        page.get_by_test_id("export-download").first.click()
    rows = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    exported = {
        row["external_id"]: label["labels"]
        for row in rows
        for label in row["labels"]
        if label["labeler"] == "newlabeler" and label["current"]
    }
    assert exported == {external_id: [name] for external_id, name in expected.items()}
