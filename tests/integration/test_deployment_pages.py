"""The devices page: who sees it, the token shown once, changes through its forms, escaping."""

import pytest

from deployment import keys
from deployment.models import ChannelEvent, Device

from .deployment_fixtures import field_fixture, ready_export, ready_version  # noqa: F401


def page(project):
    return f"/projects/{project.slug}/devices/"


@pytest.mark.django_db
def test_roles_see_the_page_and_only_mles_change_things(client, field, sme, labeler, outsider):
    client.force_login(sme)
    response = client.get(page(field.project))
    assert response.status_code == 200 and b"cam-1" in response.content and b"Register device" not in response.content
    assert client.post(page(field.project), {"action": "add-device", "name": "x"}).status_code == 403
    client.force_login(labeler)
    assert client.get(page(field.project)).status_code == 403
    client.force_login(outsider)
    assert client.get(page(field.project)).status_code == 404


@pytest.mark.django_db
def test_an_mle_registers_a_device_and_sees_its_token_once(client, field):
    client.force_login(field.mle)
    response = client.post(page(field.project), {"action": "add-device", "name": "<b>cam-2</b>", "device_uid": "u2"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = response.context["issued"].secret
    assert token.encode() in response.content
    assert Device.objects.get(device_uid="u2").token_hash == keys.secret_hash(token)
    assert b"<b>cam-2</b>" not in response.content and b"&lt;b&gt;cam-2&lt;/b&gt;" in response.content
    again = client.get(page(field.project))
    assert token.encode() not in again.content and token[:8].encode() in again.content


@pytest.mark.django_db
def test_the_forms_publish_share_sample_roll_back_and_revoke(client, field):
    client.force_login(field.mle)
    url = page(field.project)
    canary = ready_export(ready_version(field.project), b"canary one")
    assert client.post(url, {"action": "publish", "channel": "canary", "export": canary.pk}).status_code == 302
    assert client.post(url, {"action": "share", "channel": "canary", "share": "20"}).status_code == 302
    sampling = {"action": "settings", "channel": "stable", "sample_rate": "0.1", "confidence_threshold": "0.4"}
    assert client.post(url, sampling).status_code == 302
    assert client.post(url, {"action": "rollback", "channel": "canary"}).status_code == 302
    assert client.post(url, {"action": "revoke-device", "device": field.device.pk}).status_code == 302
    actions = list(ChannelEvent.objects.order_by("at", "pk").values_list("channel__name", "action"))
    assert actions[-4:] == [("canary", "promote"), ("canary", "share"), ("stable", "settings"), ("canary", "rollback")]
    field.device.refresh_from_db()
    assert field.device.revoked_at is not None
    shown = client.get(url)
    assert b"revoked" in shown.content and b"20%" in shown.content
    bad = client.post(url, {"action": "share", "channel": "canary", "share": "lots"})
    assert bad.status_code == 400 and b"share must be a number" in bad.content
    refused = client.post(url, {"action": "publish", "channel": "stable", "export": canary.pk})
    assert refused.status_code == 400 and b"never been promoted" in refused.content
