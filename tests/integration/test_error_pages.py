"""The branded error pages with DEBUG off, as production serves them: a member without the role
gets the 403 page saying so, a non-member gets the 404 page (the project does not exist for them),
an anonymous visitor goes to the login page, and the 500 page renders with no context at all."""

import re

import pytest
from django.test import RequestFactory
from django.urls import reverse

pytestmark = pytest.mark.django_db

NO_ACCESS = "You don't have access to this page"


@pytest.fixture(autouse=True)
def debug_off(settings):
    settings.DEBUG = False  # with DEBUG on, Django shows its technical 404 page instead


def staff_pages(project):
    """Pages for SMEs and MLEs only, one per view module that guards them."""
    return [
        reverse("adjudication:queue", args=[project.slug]),
        reverse("adjudication:guidelines", args=[project.slug]),
        reverse("adjudication:classes", args=[project.slug]),
        reverse("quality:dashboard", args=[project.slug]),
        reverse("training:model-list", args=[project.slug]),
        reverse("cycles:cycle-list", args=[project.slug]),
    ]


def assert_branded(response):
    """The site's own page: its stylesheet, header and skip link, no Django debug page."""
    page = response.content.decode()
    assert "frontend/concord.css" in page and 'class="topbar"' in page and 'class="skiplink"' in page
    assert "Django" not in page and "URLconf" not in page
    return page


def without_token(page):
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)


def test_a_member_without_the_role_gets_the_403_page_saying_so(client, project, labeler):
    client.force_login(labeler)
    for url in staff_pages(project):
        response = client.get(url)
        assert response.status_code == 403, url
        page = assert_branded(response)
        assert NO_ACCESS in page and 'data-error="403"' in page, url
        assert "needs the role Subject-matter expert or ML engineer" in page and "your role is Labeler" in page
        assert "lab1" in page  # signed in: the header shows who, so they can switch accounts


def test_an_sme_refused_an_mle_action_gets_the_403_page_naming_the_role(client, project, sme):
    client.force_login(sme)
    response = client.post(reverse("training:model-list", args=[project.slug]), {"trainer": "sklearn_logreg"})
    assert response.status_code == 403
    page = assert_branded(response)
    assert NO_ACCESS in page and "Only the project&#x27;s MLEs train models." in page


def test_a_non_member_gets_the_same_404_page_as_for_a_missing_project(client, project, outsider):
    client.force_login(outsider)
    missing = client.get("/projects/no-such-project/review/")
    assert missing.status_code == 404
    for url in [*staff_pages(project), reverse("frontend:project-detail", args=[project.slug])]:
        response = client.get(url)
        assert response.status_code == 404, url
        page = assert_branded(response)
        assert "Page not found" in page and 'data-error="404"' in page and NO_ACCESS not in page
        assert project.name not in page  # nothing about the project leaks
        assert f'<code class="wrap">{url}</code>' in page
        # Apart from the address, the page is the one a project that does not exist gets.
        assert without_token(page).replace(url, "") == without_token(missing.content.decode()).replace(
            "/projects/no-such-project/review/", ""
        )


def test_an_unknown_address_gets_the_branded_404_escaped(client, labeler):
    client.force_login(labeler)
    response = client.get("/no/<b>such</b>/page/")
    assert response.status_code == 404
    page = assert_branded(response)
    assert "Page not found" in page and "<b>" not in page and "/no/%3Cb%3Esuch%3C/b%3E/page/" in page


def test_anonymous_visitors_go_to_the_login_page(client, project):
    for url in [*staff_pages(project), reverse("frontend:project-detail", args=[project.slug])]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{reverse('login')}?next={url}"


def test_the_api_still_hides_staff_endpoints_from_labelers(api_as, project, labeler, sme):
    url = f"/api/v1/projects/{project.pk}/quality/"
    assert api_as(labeler).get(url).status_code == 404
    assert api_as(sme).get(url).status_code == 200


def test_a_stale_form_gets_the_branded_csrf_page(project, labeler):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(labeler)
    response = client.post(reverse("logout"))  # no token, as from a page left open too long
    assert response.status_code == 403
    page = assert_branded(response)
    assert "This form has expired" in page and "Nothing was saved" in page


def test_the_500_page_renders_without_a_request_or_context():
    from django.views.defaults import server_error

    response = server_error(RequestFactory().get("/boom/"))
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page and "frontend/concord.css" in page
    assert page.lstrip().startswith("<!doctype html>")
