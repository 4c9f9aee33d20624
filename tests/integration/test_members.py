import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from annotation.models import Membership

from ..conftest import make_user

pytestmark = pytest.mark.django_db


def members_url(project):
    return reverse("api:member-list", args=[project.pk])


def test_mle_creates_an_account_and_the_new_user_can_get_a_token(api_as, mle, project, client):
    body = {"username": "dana", "role": "labeler", "password": "a-long-Passphrase-42"}
    response = api_as(mle).post(members_url(project), body, format="json")
    assert response.status_code == 201
    assert response.data == {"username": "dana", "role": "labeler", "account_created": True}
    assert "password" not in response.data
    token = client.post(reverse("api:auth-token"), {"username": "dana", "password": "a-long-Passphrase-42"})
    assert token.status_code == 200


def test_mle_adds_an_existing_user_and_changes_a_role(api_as, mle, labeler, project, other_project):
    make_user("erin")
    client = api_as(mle)
    added = client.post(members_url(project), {"username": "erin", "role": "sme"}, format="json")
    assert added.data == {"username": "erin", "role": "sme", "account_created": False}
    client.post(members_url(project), {"username": "lab1", "role": "sme"}, format="json")
    listed = client.get(members_url(project)).data
    assert {m["username"]: m["role"] for m in listed} == {"erin": "sme", "lab1": "sme", "mle": "mle"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"username": "ghost", "role": "labeler"}, "password", "there is no user 'ghost'"),
        ({"username": "frank", "role": "labeler", "password": "123"}, "password", "too short"),
        ({"username": "bad name!", "role": "labeler", "password": "a-long-Passphrase-42"}, "username", "valid"),
        ({"username": "lab1", "role": "labeler", "password": "a-long-Passphrase-42"}, "password", "exists already"),
        ({"username": "frank", "role": "boss", "password": "a-long-Passphrase-42"}, "role", "not a valid choice"),
    ],
)
def test_bad_member_requests_name_the_field(api_as, mle, labeler, project, body, field, message):
    response = api_as(mle).post(members_url(project), body, format="json")
    assert response.status_code == 400
    assert message in str(response.data[field])
    assert not get_user_model().objects.filter(username__in=["ghost", "frank", "bad name!"]).exists()


def test_only_the_mle_adds_members_and_outsiders_get_404(api_as, labeler, sme, outsider, project):
    body = {"username": "zed", "role": "labeler", "password": "a-long-Passphrase-42"}
    assert api_as(labeler).post(members_url(project), body, format="json").status_code == 404
    assert api_as(sme).post(members_url(project), body, format="json").status_code == 403
    assert api_as(labeler).get(members_url(project)).status_code == 404
    assert api_as(outsider).get(members_url(project)).status_code == 404
    assert api_as(outsider).post(members_url(project), body, format="json").status_code == 404
    assert not Membership.objects.filter(user__username="zed").exists()
