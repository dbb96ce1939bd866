"""Conversations and messages over HTTP: the socket's rules, rows, replies and pushes."""

import pytest

from chat import handlers
from chat.models import Message, Participant
from imchat.errors import Code
from tests import factories
from tests.customer_service.conftest import consumer_frame

pytestmark = pytest.mark.django_db


def send(client, to_uid: int, msg: str = "hello", **extra):
    return client.post("/api/v1/messages/", factories.send_content(to_uid, msg, **extra), format="json")


def chat_of(a, b) -> str:
    return f"{min(a.pk, b.pk)}_{max(a.pk, b.pk)}"


def rows_of(client, **params) -> dict:
    response = client.get("/api/v1/conversations/", params)
    assert response.status_code == 200, response.content
    return response.json()["result"]


# --- Sending -------------------------------------------------------------------------------------


def test_a_message_sent_over_http_gets_the_sockets_reply_and_is_stored(alice, bob, api):
    response = send(api(alice), bob.pk, "hi bob", client_msg_id="c-1")

    assert response.status_code == 201
    body = response.json()
    assert body["code"] == 1 and body["msg"] is None
    assert set(body["result"]) == {"msg_id", "chat_id", "seq", "createtime", "client_msg_id"}
    assert body["result"]["chat_id"] == chat_of(alice, bob) and body["result"]["seq"] == 1
    assert Message.objects.get(pk=body["result"]["msg_id"]).msg == "hi bob"


def test_http_send_pushes_exactly_what_a_socket_send_pushes(alice, bob, api, captured_pushes):
    # given: one message through the socket's handler, from alice's phone
    with captured_pushes() as by_socket:
        handlers.send_msg(factories.caller_of(alice, channel_name="alice.phone"), factories.send_content(bob.pk, "a"))

    # when: the next one over HTTP
    with captured_pushes() as by_http:
        reply = send(api(alice), bob.pk, "b").json()["result"]

    # then: 200 to bob, 307 to alice's sockets (all of them: HTTP has no socket to skip), same shape
    def shape(sent):
        return [(s.group, s.code, sorted(s.result)) for s in sent]

    assert shape(by_http) == shape(by_socket)
    assert [(s.group, s.code) for s in by_http] == [(f"user.{bob.pk}", Code.MESSAGE),
                                                    (f"user.{alice.pk}", Code.OWN_MESSAGE)]
    assert by_socket[1].exclude == "alice.phone" and by_http[1].exclude is None
    pushed = by_http[0].result
    assert (pushed["msg"], pushed["msg_id"], pushed["seq"], pushed["from_uid"]) == ("b", reply["msg_id"], 2, alice.pk)
    assert pushed["avatar"] == "http://testserver/media/avatars/alice.png"


def test_resending_the_same_client_msg_id_over_http_stores_nothing_new(alice, bob, api, captured_pushes):
    first = send(api(alice), bob.pk, "once", client_msg_id="same").json()["result"]
    with captured_pushes() as sent:
        again = send(api(alice), bob.pk, "once", client_msg_id="same").json()["result"]

    assert again == first
    assert sent == [] and Message.objects.count() == 1


def test_sending_into_a_conversation_by_its_chat_id_follows_the_same_rules(alice, bob, carol, api, captured_pushes):
    chat_id = chat_of(alice, bob)
    with captured_pushes() as sent:
        response = api(bob).post(f"/api/v1/conversations/{chat_id}/messages/", {"msg_type": 1, "msg": "yo"},
                                 format="json")
    assert response.status_code == 201 and response.json()["result"]["chat_id"] == chat_id
    assert [(s.group, s.code) for s in sent] == [(f"user.{alice.pk}", 200), (f"user.{bob.pk}", 307)]

    outsider = api(carol).post(f"/api/v1/conversations/{chat_id}/messages/", {"msg_type": 1, "msg": "x"},
                               format="json")
    assert outsider.status_code == 403 and outsider.json()["code"] == -403
    notice = api(alice).post(f"/api/v1/conversations/sys_{alice.pk}/messages/", {"msg_type": 1, "msg": "x"},
                             format="json")
    assert notice.status_code == 403


@pytest.mark.parametrize("content, field", [
    ({"msg_type": 0}, "msg_type"),
    ({"msg": ""}, "msg"),
    ({"chat_type": 9}, "chat_type"),
    ({"msg_type": 2, "msg": "not-a-url"}, "msg"),
])
def test_a_bad_field_is_refused_by_name_with_http_400(alice, bob, api, content, field):
    response = api(alice).post("/api/v1/messages/", {**factories.send_content(bob.pk), **content}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 0 and body["msg"].startswith(f"{field}:") and body["result"] is None


def test_a_body_that_is_not_an_object_is_a_bad_request_not_a_crash(alice, api):
    for path in ("/api/v1/messages/", "/api/v1/groups/", "/api/v1/conversations/1_2/read/"):
        response = api(alice).post(path, [1, 2], format="json")
        assert response.status_code == 400 and response.json() == {
            "code": 0, "msg": "body: must be a JSON object", "result": None}


def test_a_message_to_nobody_is_404(alice, api):
    response = send(api(alice), 987654, "anyone?")

    assert response.status_code == 404 and response.json()["code"] == -404


def test_a_consumer_and_an_agent_talk_through_a_shop_over_http(consumer, amy, shop, make_agent, connect, api,
                                                                captured_pushes):
    make_agent(shop, amy)
    connect(amy)
    with captured_pushes() as asked:
        sent = api(consumer).post("/api/v1/messages/", consumer_frame(shop.pk, "in stock?"), format="json")
    assert sent.status_code == 201
    chat_id = f"{shop.pk}____{consumer.pk}"
    assert [s.result["to_uid"] for s in asked if s.code == Code.MESSAGE] == [amy.pk]

    with captured_pushes() as answered:
        reply = api(amy).post(f"/api/v1/conversations/{chat_id}/messages/",
                              {"msg_type": 1, "msg": "yes", "role_type": "service"}, format="json")
    assert reply.status_code == 201
    to_consumer = [s.result for s in answered if s.group == f"user.{consumer.pk}" and s.code == Code.MESSAGE]
    assert to_consumer[0]["nickname"] == "Tea House" and to_consumer[0]["service_nickname"] == "Amy"

    page = api(amy).get(f"/api/v1/conversations/{chat_id}/messages/", {"role_type": "service"}).json()["result"]
    assert [m["msg"] for m in page["messages"]] == ["in stock?", "yes"]
    refused = api(consumer).get(f"/api/v1/conversations/{chat_id}/messages/", {"role_type": "service"})
    assert refused.status_code == 403


def test_over_http_too_an_agent_answers_customers_only_and_never_writes_first(consumer, amy, shop, make_agent,
                                                                               api, captured_pushes):
    make_agent(shop, amy)
    stranger = factories.make_user(username="stranger")

    with captured_pushes() as pushed:
        by_body = api(amy).post("/api/v1/messages/", {**consumer_frame(stranger.pk, "our sale!"), "shop_id": shop.pk,
                                                      "role_type": "service"}, format="json")
        by_path = api(amy).post(f"/api/v1/conversations/{shop.pk}____{stranger.pk}/messages/",
                                {"msg_type": 1, "msg": "our sale!", "role_type": "service"}, format="json")

    assert [(r.status_code, r.json()["code"]) for r in (by_body, by_path)] == [(404, -404)] * 2
    assert pushed == [] and not Message.objects.filter(msg="our sale!").exists()


# --- History by seq --------------------------------------------------------------------------------


def test_history_pages_backwards_and_forwards_by_seq_without_gaps_or_repeats(alice, bob, api):
    caller = factories.caller_of(alice)
    for n in range(1, 24):
        handlers.send_msg(caller, factories.send_content(bob.pk, f"m{n}"))
    client, path = api(bob), f"/api/v1/conversations/{chat_of(alice, bob)}/messages/"

    latest = client.get(path, {"limit": 5}).json()["result"]
    assert [m["seq"] for m in latest["messages"]] == [19, 20, 21, 22, 23] and latest["has_more"]

    backwards, page = [], latest
    while True:
        backwards = [m["seq"] for m in page["messages"]] + backwards
        if not page["has_more"]:
            break
        page = client.get(path, {"before": page["oldest_seq"], "limit": 5}).json()["result"]
    assert backwards == list(range(1, 24))

    forwards, after = [], 0
    while True:
        page = client.get(path, {"after": after, "limit": 7}).json()["result"]
        forwards += [m["seq"] for m in page["messages"]]
        if not page["has_more"]:
            break
        after = page["newest_seq"]
    assert forwards == list(range(1, 24))
    assert client.get(path, {"after": 23}).json()["result"] == {
        "chat_id": chat_of(alice, bob), "messages": [], "has_more": False, "oldest_seq": None, "newest_seq": None}


def test_history_items_are_the_pushed_message_shape(alice, bob, api):
    handlers.send_msg(factories.caller_of(alice), factories.send_content(bob.pk, "shape"))

    message = api(bob).get(f"/api/v1/conversations/{chat_of(alice, bob)}/messages/").json()["result"]["messages"][0]

    assert message["msg"] == "shape" and message["id"] == alice.pk and message["chat_type"] == 1
    assert isinstance(message["createtime"], int) and message["avatar"].startswith("http://testserver/")


def test_history_refuses_before_and_after_together_and_bad_limits(alice, bob, api):
    path = f"/api/v1/conversations/{chat_of(alice, bob)}/messages/"
    both = api(alice).get(path, {"before": 5, "after": 1})
    assert both.status_code == 400 and both.json()["msg"].startswith("before:")
    assert api(alice).get(path, {"limit": 0}).json()["msg"].startswith("limit:")
    assert api(alice).get("/api/v1/conversations/nonsense/messages/").status_code == 400


def test_a_conversation_of_others_is_not_found(alice, bob, carol, api):
    handlers.send_msg(factories.caller_of(alice), factories.send_content(bob.pk, "private"))
    chat_id = chat_of(alice, bob)

    for response in (
        api(carol).get(f"/api/v1/conversations/{chat_id}/messages/"),
        api(carol).post(f"/api/v1/conversations/{chat_id}/read/", {}, format="json"),
        api(carol).post(f"/api/v1/conversations/{chat_id}/hide/", {}, format="json"),
    ):
        assert response.status_code == 404 and response.json()["code"] == -404


def test_an_empty_conversation_i_could_be_in_is_an_empty_page(alice, bob, api):
    page = api(alice).get(f"/api/v1/conversations/{chat_of(alice, bob)}/messages/").json()["result"]

    assert page["messages"] == [] and page["has_more"] is False


# --- The list, read markers, hiding ----------------------------------------------------------------


def test_the_list_has_unread_counts_and_mark_read_clears_them_with_a_receipt(alice, bob, api, captured_pushes):
    for text in ("one", "two"):
        send(api(alice), bob.pk, text)

    listed = rows_of(api(bob))
    assert listed["unread_count"] == 2
    row = listed["rows"][0]
    assert (row["chat_id"], row["friend_uid"], row["last_msg"], row["unread_count"]) == (
        chat_of(alice, bob), alice.pk, "two", 2)

    with captured_pushes() as sent:
        read = api(bob).post(f"/api/v1/conversations/{row['chat_id']}/read/", {}, format="json")
    assert read.status_code == 200 and read.json()["result"] == {"chat_id": row["chat_id"], "seq": 2}
    assert (sent[0].group, sent[0].code, sent[0].result["reader_uid"]) == (f"user.{alice.pk}", 301, bob.pk)
    assert rows_of(api(bob))["unread_count"] == 0


def test_hiding_a_conversation_takes_it_off_the_list_until_a_new_message(alice, bob, api):
    send(api(alice), bob.pk, "first")
    chat_id = chat_of(alice, bob)

    hidden = api(bob).post(f"/api/v1/conversations/{chat_id}/hide/", format="json")
    assert hidden.status_code == 200 and hidden.json()["result"] == {"chat_id": chat_id}
    assert rows_of(api(bob))["rows"] == []
    assert Participant.objects.get(user=bob).hidden

    send(api(alice), bob.pk, "again")
    assert [r["chat_id"] for r in rows_of(api(bob))["rows"]] == [chat_id]


def test_the_service_list_is_for_agents_only(consumer, amy, shop, make_agent, api):
    api(consumer).post("/api/v1/messages/", consumer_frame(shop.pk, "hello"), format="json")
    make_agent(shop, amy)

    rows = rows_of(api(amy), is_service="true")["rows"]
    assert [(r["chat_id"], r["friend_uid"]) for r in rows] == [(f"{shop.pk}____{consumer.pk}", consumer.pk)]
    refused = api(consumer).get("/api/v1/conversations/", {"is_service": "true"})
    assert refused.status_code == 403 and refused.json()["code"] == -403


def test_requests_without_a_valid_token_are_refused_in_the_protocol_shape(alice):
    from rest_framework.test import APIClient

    anonymous = APIClient().get("/api/v1/conversations/")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == -200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    bad = client.get("/api/v1/conversations/")
    assert bad.status_code == 401 and bad.json() == {"code": -200, "msg": "invalid token", "result": None}
