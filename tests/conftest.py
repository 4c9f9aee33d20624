"""Fixed test users and projects shared by the integration and e2e tests.

Every role the design names has a user: two labelers, an SME and an MLE in `project`, and an
`outsider` who belongs only to `other_project` (for the cross-project 404 tests).
"""

import os
from pathlib import Path

import pytest
from rest_framework.test import APIClient

# The real crowd datasets live beside the repository, not in it: a clone made elsewhere lacks them.
CROWD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "crowd"
CROWD_DATASETS = ("D_Product", "D_PosSent", "S_Rel", "S_Adult", "bluebirds", "RTE")


def require_crowd_data():
    """Skip the running test when the crowd datasets are absent, or fail it in CI (`CI=true`),
    which must run them (as tests/e2e/conftest.py does for Chromium).

    Every test marked `@pytest.mark.crowd` goes through here (see `pytest_runtest_setup`), and so
    does `tests.unit.crowd_arrays.load`, so a test that reads the data unmarked is caught too.
    """
    missing = [name for name in CROWD_DATASETS if not (CROWD_DIR / name).is_dir()]
    if not missing:
        return
    message = (
        f"crowd datasets not found in {CROWD_DIR} (missing: {', '.join(missing)}); "
        "put the shared folder's datasets/crowd/ beside the repository to run these tests"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture (a test database costs seconds): the crowd tests need the shared data.
    if item.get_closest_marker("crowd") is not None:
        require_crowd_data()


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hasher():
    # The deliberately slow default hasher costs a second per user; tests create many users.
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def make_user(username, password="pw-for-tests-only"):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username=username, password=password)


@pytest.fixture
def project(db):
    from annotation.services.projects import create_project

    return create_project(
        slug="birds",
        name="Birds",
        data_kind="image",
        classes=["crow", "dove", "owl"],
        ambiguity_classes=["unclear"],
        overlap=3,
        consistency_fraction=0.2,
    )


@pytest.fixture
def other_project(db):
    from annotation.services.projects import create_project

    return create_project(slug="reviews", name="Reviews", data_kind="text", classes=["pos", "neg"])


def _member(user, project, role):
    from annotation.models import Membership

    Membership.objects.create(user=user, project=project, role=role)
    return user


@pytest.fixture
def labeler(project):
    return _member(make_user("lab1"), project, "labeler")


@pytest.fixture
def labeler2(project):
    return _member(make_user("lab2"), project, "labeler")


@pytest.fixture
def sme(project):
    return _member(make_user("sme"), project, "sme")


@pytest.fixture
def mle(project):
    return _member(make_user("mle"), project, "mle")


@pytest.fixture
def outsider(other_project):
    return _member(make_user("outsider"), other_project, "mle")


def api_client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def api_as():
    """`api_as(user)` gives an API client authenticated as that user."""
    return api_client_for
