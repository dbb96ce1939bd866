"""Groups over HTTP: /api/v1/groups/ runs the same services as the socket's group.* actions."""

import pytest
from rest_framework.test import APIClient

from chat.models import Participant
from tests import factories

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.token_for(user)}")
    return client


def test_a_group_created_over_http_has_the_caller_as_owner_and_lists_its_members(alice, bob):
    response = client_for(alice).post("/api/v1/groups/", {"name": "Hikers", "uids": [bob.pk]}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["code"] == 1 and body["result"]["chat_id"] == f"g{body['result']['group_id']}"
    members = client_for(bob).get(f"/api/v1/groups/{body['result']['group_id']}/members/").json()["result"]
    assert [(m["id"], m["role"]) for m in members["members"]] == [(alice.pk, "owner"), (bob.pk, "member")]


def test_invite_kick_rename_and_dissolve_follow_the_socket_rules(alice, bob, carol):
    owner, member = client_for(alice), client_for(bob)
    group_id = owner.post("/api/v1/groups/", {"name": "G", "uids": [bob.pk]}, format="json").json()["result"]["group_id"]

    assert owner.post(f"/api/v1/groups/{group_id}/members/", {"uids": [carol.pk]}, format="json").status_code == 200
    refused = member.delete(f"/api/v1/groups/{group_id}/members/{carol.pk}/")
    assert refused.status_code == 403 and refused.json()["code"] == -403
    assert owner.delete(f"/api/v1/groups/{group_id}/members/{carol.pk}/").status_code == 200
    assert Participant.objects.get(user=carol, conversation__group_id=group_id).left_seq is not None
    assert owner.patch(f"/api/v1/groups/{group_id}/", {"name": "New"}, format="json").json()["result"]["name"] == "New"
    assert member.delete(f"/api/v1/groups/{group_id}/").status_code == 403
    assert owner.delete(f"/api/v1/groups/{group_id}/").status_code == 200
    gone = owner.get(f"/api/v1/groups/{group_id}/")
    assert gone.status_code == 404 and gone.json() == {"code": -404, "msg": "group_id: no such group", "result": None}


def test_a_member_leaves_by_deleting_themselves_and_the_list_no_longer_shows_the_group(alice, bob):
    owner, member = client_for(alice), client_for(bob)
    group_id = owner.post("/api/v1/groups/", {"name": "G", "uids": [bob.pk]}, format="json").json()["result"]["group_id"]

    assert member.delete(f"/api/v1/groups/{group_id}/members/{bob.pk}/").status_code == 200

    assert member.get("/api/v1/groups/").json()["result"] == []
    assert [g["group_id"] for g in owner.get("/api/v1/groups/").json()["result"]] == [group_id]


def test_the_api_refuses_requests_without_credentials_in_the_protocol_shape():
    response = APIClient().get("/api/v1/groups/")

    assert response.status_code == 401
    assert response.json()["code"] == -200


def test_over_http_a_plain_member_cannot_invite_back_someone_the_owner_kicked_and_the_owner_can(alice, bob, carol):
    # given alice kicked carol
    owner, member = client_for(alice), client_for(bob)
    group_id = owner.post("/api/v1/groups/", {"name": "G", "uids": [bob.pk, carol.pk]},
                          format="json").json()["result"]["group_id"]
    assert owner.delete(f"/api/v1/groups/{group_id}/members/{carol.pk}/").status_code == 200

    # when bob, then carol herself, then alice invite her back
    by_member = member.post(f"/api/v1/groups/{group_id}/members/", {"uids": [carol.pk]}, format="json")
    by_herself = client_for(carol).post(f"/api/v1/groups/{group_id}/members/", {"uids": [carol.pk]}, format="json")
    by_owner = owner.post(f"/api/v1/groups/{group_id}/members/", {"uids": [carol.pk]}, format="json")

    # then only the owner's request brings her back
    assert (by_member.status_code, by_member.json()["code"]) == (403, -403)
    assert (by_herself.status_code, by_herself.json()["code"]) == (403, -403)
    assert by_owner.json()["result"] == {"group_id": group_id, "uids": [carol.pk]}


def test_over_http_a_muted_member_who_leaves_and_is_invited_back_is_still_muted(alice, bob, carol):
    # given alice muted carol, who then left
    owner, member, muted = client_for(alice), client_for(bob), client_for(carol)
    group_id = owner.post("/api/v1/groups/", {"name": "G", "uids": [bob.pk, carol.pk]},
                          format="json").json()["result"]["group_id"]
    assert owner.patch(f"/api/v1/groups/{group_id}/members/{carol.pk}/", {"muted": True},
                       format="json").status_code == 200
    assert muted.delete(f"/api/v1/groups/{group_id}/members/{carol.pk}/").status_code == 200

    # when bob invites her back
    assert member.post(f"/api/v1/groups/{group_id}/members/", {"uids": [carol.pk]}, format="json").status_code == 200

    # then she still cannot send
    sent = muted.post("/api/v1/messages/", {"to_uid": group_id, "chat_type": 2, "msg_type": 1, "msg": "back"},
                      format="json")
    assert (sent.status_code, sent.json()["code"]) == (403, -403)
