"""The OpenAPI schema types every request and response body: an API client learns each endpoint's
fields from /api/schema/, never "an object" (issue 13). Also checks that the adjudication
endpoints answer with the fields their schema lists."""

import pytest

from annotation.models import LabelClass

pytestmark = pytest.mark.django_db


def free_form_bodies(schema: dict) -> list[str]:
    """'METHOD path body' of every request or response body whose schema is an object with no
    declared properties (or an array of such), after following $refs."""
    components = schema.get("components", {}).get("schemas", {})

    def resolve(node):
        while "$ref" in node:
            node = components[node["$ref"].rpartition("/")[2]]
        return node

    def free_form(node):
        node = resolve(node)
        if node.get("type") == "array":
            return free_form(node.get("items", {}))
        if any(key in node for key in ("oneOf", "anyOf", "allOf")):
            return any(free_form(part) for key in ("oneOf", "anyOf", "allOf") for part in node.get(key, []))
        return node.get("type", "object") == "object" and not node.get("properties")

    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue  # path-level `parameters`
            bodies = [("request", c) for c in operation.get("requestBody", {}).get("content", {}).values()]
            for code, response in operation["responses"].items():
                bodies += [(code, c) for c in response.get("content", {}).values()]
            found += [f"{method.upper()} {path} {which}" for which, c in bodies if free_form(c.get("schema", {}))]
    return found


def properties(schema, name):
    return set(schema["components"]["schemas"][name]["properties"])


@pytest.fixture
def schema(client, mle):
    client.force_login(mle)
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_no_request_or_response_body_is_a_free_form_object(schema):
    assert "/api/v1/projects/{project_id}/classes/merge/" in schema["paths"]  # the walk saw the adjudication API
    assert free_form_bodies(schema) == []


def test_the_walk_catches_a_free_form_body():
    schema = {
        "paths": {
            "/typed/": {
                "post": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/c/T"}}}}}},
            },
            "/free/": {
                "parameters": [],
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"201": {"content": {"application/json": {"schema": {"type": "array", "items": {}}}}}},
                },
            },
        },
        "components": {"schemas": {"T": {"type": "object", "properties": {"id": {"type": "integer"}}}}},
    }
    assert free_form_bodies(schema) == ["POST /free/ request", "POST /free/ 201"]


def test_adjudication_answers_carry_the_fields_their_schema_lists(schema, api_as, project, sme):
    api = api_as(sme)
    base = f"/api/v1/projects/{project.pk}"
    classes = api.get(f"{base}/classes/")
    assert classes.status_code == 200 and classes.json()
    assert set(classes.json()[0]) == properties(schema, "Class")
    created = api.post(f"{base}/classes/", {"name": "heron"}, format="json")
    assert created.status_code == 201 and set(created.json()) == properties(schema, "ClassCreated")
    heron = LabelClass.objects.get(project=project, name="heron")
    renamed = api.post(f"{base}/classes/{heron.pk}/rename/", {"name": "egret"}, format="json")
    assert renamed.status_code == 200 and set(renamed.json()) == properties(schema, "Operation")
    draft = api.post(f"{base}/guidelines/", {"text": "# Birds"}, format="json")
    assert draft.status_code == 201 and set(draft.json()) == properties(schema, "GuidelineDraft")
    published = api.post(f"{base}/guidelines/publish/", {}, format="json")
    assert published.status_code == 201 and set(published.json()) == properties(schema, "GuidelinePublished")
    listed = api.get(f"{base}/guidelines/").json()
    assert set(listed) == properties(schema, "Guidelines")
    assert set(listed["versions"][0]) == properties(schema, "GuidelineVersion")
    note = api.post(f"{base}/guideline-notes/", {"text": "herons vs egrets?"}, format="json")
    assert note.status_code == 201 and set(note.json()) == properties(schema, "GuidelineNote")
    page = api.get(f"{base}/disagreements/")
    assert page.status_code == 200 and set(page.json()) == properties(schema, "QueuePage")
