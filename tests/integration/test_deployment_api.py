"""The MLE's API for devices, fleets and channels: roles, the token shown once, every channel change
recorded, bad input 400 naming the field, other projects 404; fleet enrolment."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployment import keys
from deployment.models import ChannelEvent, Device

from .deployment_fixtures import field_fixture, ready_export, ready_version  # noqa: F401


def url(project, tail):
    return f"/api/v1/projects/{project.pk}/{tail}"


@pytest.mark.django_db
def test_an_mle_registers_a_device_sees_its_token_once_and_revokes_it(api_as, project, mle, sme, labeler):
    client = api_as(mle)
    created = client.post(url(project, "devices/"), {"name": "cam-7", "device_uid": "SN-0007"}, format="json")
    assert created.status_code == 201, created.data
    token = created.data["token"]
    device = Device.objects.get(pk=created.data["id"])
    assert device.token_hash == keys.secret_hash(token) and token not in device.token_hash
    assert created.data["token_prefix"] == token[:8] and created.data["channel"] == "stable"
    listed = api_as(sme).get(url(project, "devices/"))
    assert listed.status_code == 200 and [d["name"] for d in listed.data] == ["cam-7"]
    assert "token" not in listed.data[0] and "token_hash" not in listed.data[0]
    assert api_as(sme).post(url(project, "devices/"), {"name": "x"}, format="json").status_code == 403
    assert api_as(labeler).get(url(project, "devices/")).status_code == 404
    twice = client.post(url(project, "devices/"), {"name": "cam-8", "device_uid": "SN-0007"}, format="json")
    assert twice.status_code == 409 and "already enrolled" in twice.data["device_uid"][0]
    revoked = client.post(url(project, f"devices/{device.pk}/revoke/"))
    assert revoked.status_code == 200 and revoked.data["revoked_at"] is not None
    # The id is free again once revoked.
    again = client.post(url(project, "devices/"), {"name": "cam-7b", "device_uid": "SN-0007"}, format="json")
    assert again.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 101}, "name"), ({"name": "a\x00b"}, "name")],
)
def test_bad_devices_are_400_naming_the_field(api_as, project, mle, body, field):
    response = api_as(mle).post(url(project, "devices/"), body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_other_projects_are_404_everywhere(api_as, project, mle, outsider, other_project):
    device = api_as(mle).post(url(project, "devices/"), {"name": "cam-1"}, format="json").data
    client = api_as(outsider)
    for method, tail in [
        ("get", "devices/"), ("post", "devices/"), ("post", f"devices/{device['id']}/revoke/"), ("get", "fleets/"),
        ("post", "fleets/"), ("get", "channels/"), ("get", "channels/stable/events/"),
        ("post", "channels/stable/publish/"), ("post", "channels/canary/share/"), ("post", "channels/stable/rollback/"),
        ("post", "channels/stable/settings/"),
    ]:  # fmt: skip
        assert getattr(client, method)(url(project, tail), {}, format="json").status_code == 404, tail
    # And a device of this project is not found through the outsider's own project.
    assert client.post(url(other_project, f"devices/{device['id']}/revoke/")).status_code == 404
    assert Device.objects.get(pk=device["id"]).revoked_at is None


@pytest.mark.django_db
def test_publish_share_settings_and_rollback_are_each_recorded(api_as, field):
    client = api_as(field.mle)
    project = field.project
    v2 = ready_version(project, promote=True)
    e2 = ready_export(v2, b"second bundle")
    e3 = ready_export(ready_version(project), b"canary candidate")

    published = client.post(url(project, "channels/stable/publish/"), {"export": e2.pk, "note": "v2"}, format="json")
    assert published.status_code == 200, published.data
    assert published.data["channel"]["export"]["id"] == e2.pk
    assert published.data["event"]["action"] == "promote" and published.data["event"]["previous_export"]["id"] == (
        field.export.pk
    )
    assert client.post(url(project, "channels/stable/publish/"), {"export": e2.pk}, format="json").data["event"] is None
    refused = client.post(url(project, "channels/stable/publish/"), {"export": e3.pk}, format="json")
    assert refused.status_code == 400 and "never been promoted" in refused.data["export"][0]
    canary = client.post(url(project, "channels/canary/publish/"), {"export": e3.pk}, format="json")
    assert canary.status_code == 200
    share = client.post(url(project, "channels/canary/share/"), {"share": 25}, format="json")
    assert share.status_code == 200 and share.data["channel"]["canary_share"] == 25
    assert share.data["event"]["previous_share"] == 0 and share.data["event"]["share"] == 25
    bad_share = client.post(url(project, "channels/stable/share/"), {"share": 25}, format="json")
    assert bad_share.status_code == 400 and "canary channel" in bad_share.data["channel"][0]
    assert client.post(url(project, "channels/canary/share/"), {"share": 101}, format="json").status_code == 400
    settings_change = client.post(url(project, "channels/canary/settings/"), {"sample_rate": 0.5}, format="json")
    assert settings_change.data["event"]["channel_settings"]["sample_rate"] == 0.5

    back = client.post(url(project, "channels/stable/rollback/"), {"note": "regression"}, format="json")
    assert back.status_code == 200 and back.data["channel"]["export"]["id"] == field.export.pk
    empty = client.post(url(project, "channels/stable/rollback/"), {}, format="json")
    assert empty.status_code == 200 and empty.data["channel"]["export"] is None  # before the first: nothing
    nothing = client.post(url(project, "channels/stable/rollback/"), {}, format="json")
    assert nothing.status_code == 409

    history = client.get(url(project, "channels/stable/events/")).data
    assert [e["action"] for e in history] == ["rollback", "rollback", "promote", "settings", "promote"]
    assert history[0]["note"] == "" and history[1]["note"] == "regression" and history[1]["by"] == "mle"
    assert ChannelEvent.objects.filter(channel__name="canary").count() == 3
    assert client.post(url(project, "channels/nightly/publish/"), {"export": e2.pk}, format="json").status_code == 404
    foreign = client.post(url(project, "channels/stable/publish/"), {"export": 10**9}, format="json")
    assert foreign.status_code == 400 and "not an export of this project" in foreign.data["export"][0]


@pytest.mark.django_db
def test_an_exporting_or_failed_export_cannot_be_published(api_as, field):
    from training.models import ModelExport

    exporting = ModelExport.objects.create(model_version=field.version, format="float32")
    response = api_as(field.mle).post(
        url(field.project, "channels/stable/publish/"), {"export": exporting.pk}, format="json"
    )
    assert response.status_code == 400 and "only a ready export" in response.data["export"][0]


@pytest.mark.django_db
def test_a_fleet_enrols_devices_until_its_secret_is_revoked(api_as, project, mle, client):
    api = api_as(mle)
    created = api.post(url(project, "fleets/"), {"name": "shop floor"}, format="json")
    assert created.status_code == 201
    secret = created.data["secret"]
    enrolled = client.post(
        "/api/v1/device/enrol", {"secret": secret, "device_uid": "pi-1"}, content_type="application/json"
    )
    assert enrolled.status_code == 201 and enrolled.data["project"] == project.pk
    device = Device.objects.get(pk=enrolled.data["device_id"])
    assert device.fleet.name == "shop floor" and device.token_hash == keys.secret_hash(enrolled.data["token"])
    twice = client.post(
        "/api/v1/device/enrol", {"secret": secret, "device_uid": "pi-1"}, content_type="application/json"
    )
    assert twice.status_code == 409
    wrong = client.post(
        "/api/v1/device/enrol", {"secret": "nope", "device_uid": "pi-2"}, content_type="application/json"
    )
    assert wrong.status_code == 400 and "secret" in wrong.json()
    assert api.get(url(project, "fleets/")).data[0]["devices"] == 1
    api.post(url(project, f"fleets/{device.fleet_id}/revoke/"))
    late = client.post(
        "/api/v1/device/enrol", {"secret": secret, "device_uid": "pi-3"}, content_type="application/json"
    )
    assert late.status_code == 400 and late.json()["secret"] == ["the enrolment secret is not valid"]
    # The enrolled device keeps working.
    meta = client.get("/api/v1/device/bundle/meta", HTTP_AUTHORIZATION=f"Bearer {enrolled.data['token']}")
    assert meta.status_code == 404  # authenticated; no bundle published yet


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_devices_or_fleets(api_as, field, django_assert_num_queries):
    from deployment import devices

    client = api_as(field.mle)
    for tail in ("devices/", "fleets/", "channels/"):
        devices.create_fleet(field.project, name=f"f-{tail.strip('/')}")
        client.get(url(field.project, tail))  # warm: channels are created on first use
        with CaptureQueriesContext(connection) as one:
            assert client.get(url(field.project, tail)).status_code == 200
        for n in range(5):
            devices.create_device(field.project, name=f"more-{tail}-{n}")
            devices.create_fleet(field.project, name=f"more-{tail}-{n}")
        with django_assert_num_queries(len(one.captured_queries)):
            assert client.get(url(field.project, tail)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"device_uid": "x"}, "secret"),
        ({"secret": "s"}, "device_uid"),
        ({"secret": "s", "device_uid": "a\x01"}, "device_uid"),
    ],
)
def test_bad_enrolments_are_400_naming_the_field(client, project, body, field_name):
    response = client.post("/api/v1/device/enrol", body, content_type="application/json")
    assert response.status_code == 400 and field_name in response.json(), response.json()
    assert not Device.objects.exists()
