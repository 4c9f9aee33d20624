"""Schemathesis against the API's own schema (/api/schema/, drf-spectacular), in process through the
WSGI app: every operation, as an MLE and as a labeler, with inputs that fit the schema and inputs
that break it. Any 5xx fails the test, listed by operation with the request that caused it.

Bounded and reproducible: a few examples per operation and mode, Hypothesis derandomized (a fixed
seed), no example database. Each request runs inside a savepoint that is rolled back, so one
request's writes (or a failed statement) never change what the next one sees. Path parameters
named `project_id` are the real project's id, so the generated queries and bodies reach the views
instead of stopping at a 404.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode

from annotation.models import Item
from annotation.services import labeling

pytestmark = pytest.mark.django_db
MIDDLEWARE = "config.text_input.TextInputMiddleware"
EXAMPLES = 3  # per operation, mode and role: about 500 requests in all
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def wsgi_app(settings):
    """The real WSGI app with the middleware settings.py lists (the text rule added if missing).
    Django closes a connection at each request's start and end; inside the test's transaction
    that would lose it, so those two hooks are off for the test, as Django's own test client does."""
    if MIDDLEWARE not in settings.MIDDLEWARE:
        settings.MIDDLEWARE = [settings.MIDDLEWARE[0], MIDDLEWARE, *settings.MIDDLEWARE[1:]]
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def content(project, labeler, tmp_path):
    """A few items, one served to the labeler, so list and queue endpoints have rows to show."""
    for n in range(4):
        Item.objects.create(project=project, external_id=f"t{n}", split="train")
    labeling.refresh_queue_state(project)
    labeling.next_item(project, labeler)
    return project


def server_errors(app, user, project):
    """[(operation, mode, status, request)] for every 5xx the generated requests got, and the
    number of (operation, mode) pairs that sent requests."""
    schema = schemathesis.openapi.from_wsgi("/api/schema/", app, headers=_auth(user))
    headers = _auth(user)
    found = []
    fuzzed = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        fixed = {"project_id": project.pk} if "project_id" in names else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
            try:
                _fuzz(
                    strategy,
                    headers,
                    lambda status, curl, op=operation, m=mode: found.append((op.label, m.value, status, curl)),
                )
            except Unsatisfiable:
                continue  # nothing to break in this operation (e.g. its only parameter is fixed)
            fuzzed += 1
    return found, fuzzed


def _fuzz(strategy, headers, on_server_error):
    @FUZZ_SETTINGS
    @given(case=strategy)
    def run(case):
        savepoint = transaction.savepoint_create()
        try:
            response = case.call(headers=headers)
        finally:
            transaction.savepoint_rollback(savepoint)
        if response.status_code >= 500:
            on_server_error(response.status_code, case.as_curl_command(headers=headers))

    run()


def _auth(user):
    return {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def _report(errors):
    seen = {}
    for label, mode, status, curl in errors:
        seen.setdefault((label, status), f"{label} ({mode}) -> {status}\n    {curl}")
    return "\n".join(seen.values())


@pytest.mark.parametrize("role", ["mle", "labeler"])
def test_no_server_error(wsgi_app, content, role, request):
    errors, fuzzed = server_errors(wsgi_app, request.getfixturevalue(role), content)
    assert fuzzed >= 60  # both modes of most of the API's ~45 operations sent requests
    assert not errors, _report(errors)
