"""System notices (chat_type 3): to a user, a shop, a group or everyone; the command and the admin form.

A notice to everyone is stored once (`sys_0`) and pushed once to the `everyone` channel group; each
user's unread count for it is derived when they look (PROTOCOL.md sections 3, 4 and 8).
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.test import Client, TestCase
from django.urls import reverse

from accounts.services import user_create
from chat import groups, handlers, realtime
from chat.models import Message, Notice, Participant
from chat.protocol import Envelope, dumps
from customer_service import services as shop_services
from customer_service.notices import notice_send_to
from tests.factories import BASE_URL, caller_of, make_user

pytestmark = pytest.mark.django_db

Pushed = tuple[str, int, dict]  # (channel-layer group, code, result)


@contextmanager
def pushes() -> Iterator[list[Pushed]]:
    """The pushes the block's writes make once committed (the test's transaction never commits)."""
    sent: list[Pushed] = []
    with realtime.collecting() as collected:
        with TestCase.captureOnCommitCallbacks(execute=True):
            yield sent
    for push in collected:
        frame = json.loads(push.text)
        sent.append((push.group, frame["code"], frame["result"]))


def run(user, cls: str, action: str, content: dict | None = None) -> dict:
    frame, _ = handlers.run(caller_of(user), Envelope(cls=cls, action=action, content=content or {}))
    return json.loads(dumps(frame))


def recent(user) -> dict:
    frame = run(user, "user", "recentChat")
    assert frame["code"] == 102, frame
    return frame["result"]


def row_of(user, chat_id: str) -> dict | None:
    rows = [row for row in recent(user)["rows"] if row["chat_id"] == chat_id]
    return rows[0] if rows else None


def history(user, chat_id: str) -> list[str]:
    frame = run(user, "user", "chatRecord", {"chat_id": chat_id})
    assert frame["code"] == 201, frame
    return [row["msg"] for row in reversed(frame["result"]["rows"])]


def command(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sendnotice", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


@pytest.fixture
def dave(db):
    return make_user(username="dave", nickname="Dave")


@pytest.fixture
def shop(alice, bob, carol):
    """alice's shop, with bob and carol as agents."""
    shop = shop_services.shop_create(name="Tea House", owner=alice)
    for agent in (bob, carol):
        shop_services.agent_add(shop=shop, user=agent)
    return shop


@pytest.fixture
def group_id(alice, bob, carol) -> int:
    """alice's group with bob and carol, which carol has left."""
    group = groups.group_create(caller=caller_of(alice), name="Hikers", uids=[bob.pk, carol.pk])
    groups.group_leave(caller=caller_of(carol), group_id=group.pk)
    return group.pk


# --- To one user ---------------------------------------------------------------------------------


def test_a_notice_to_a_user_is_stored_in_their_box_and_pushed_as_200_chat_type_3(bob, settings):
    # when
    with pushes() as sent:
        notice = notice_send_to(audience="user", target_id=bob.pk, text="Maintenance tonight")

    # then one push, to bob's sockets, from the platform: no `id`, from_uid 0
    message = Message.objects.get()
    [(group, code, result)] = sent
    assert (group, code) == (realtime.user_group(bob.pk), 200)
    assert "id" not in result
    assert result == {
        "nickname": settings.IM_SYSTEM_NAME, "avatar": result["avatar"], "chat_id": f"sys_{bob.pk}",
        "chat_type": 3, "msg_type": 1, "msg": "Maintenance tonight", "createtime": int(message.created_at.timestamp()),
        "msg_id": message.pk, "seq": 1, "from_uid": 0, "to_uid": bob.pk, "client_msg_id": None,
    }
    assert result["avatar"].startswith(("http://", "https://"))
    assert (notice.audience, notice.target_id, notice.recipients) == ("user", bob.pk, 1)
    assert (message.sender_id, message.chat_type) == (None, 3)


def test_the_users_list_shows_the_notice_box_as_the_platform_with_one_unread(alice, bob, settings):
    notice_send_to(audience="user", target_id=bob.pk, text="Welcome")

    bobs = recent(bob)

    assert bobs["unread_count"] == 1
    [row] = bobs["rows"]
    assert row | {"id": 0, "last_time": 0} == {
        "id": 0, "uid": bob.pk, "chat_id": f"sys_{bob.pk}", "shop_id": 0, "friend_uid": 0,
        "friend_name": settings.IM_SYSTEM_NAME, "friend_avatar": f"{BASE_URL}/static/img/avatar.png",
        "last_msg": "Welcome", "last_uid": 0, "last_time": 0, "chat_type": 3, "msg_type": 1, "unread_count": 1,
    }
    assert recent(alice) == {"rows": [], "unread_count": 0}


def test_a_users_notice_box_is_theirs_alone(alice, bob):
    notice_send_to(audience="user", target_id=bob.pk, text="For bob")

    assert history(bob, f"sys_{bob.pk}") == ["For bob"]
    assert run(alice, "user", "chatRecord", {"chat_id": f"sys_{bob.pk}"})["code"] == -404
    assert run(alice, "chat", "setChatRead", {"chat_id": f"sys_{bob.pk}"})["code"] == -404


def test_reading_the_box_clears_its_unread_count(bob):
    notice_send_to(audience="user", target_id=bob.pk, text="one")
    notice_send_to(audience="user", target_id=bob.pk, text="two")
    assert row_of(bob, f"sys_{bob.pk}")["unread_count"] == 2

    assert run(bob, "chat", "setChatRead", {"chat_id": f"sys_{bob.pk}"})["code"] == 1

    assert row_of(bob, f"sys_{bob.pk}")["unread_count"] == 0


@pytest.mark.parametrize("by_chat_id", [False, True], ids=["to_uid", "chat_id"])
def test_users_cannot_send_system_notices(alice, bob, by_chat_id):
    target = {"to_uid": None, "chat_id": f"sys_{bob.pk}"} if by_chat_id else {"to_uid": bob.pk, "chat_id": ""}

    frame = run(alice, "chat", "sendMsg", {"chat_type": 3, "msg_type": 1, "msg": "I am the system", **target})

    assert frame["code"] == -403
    assert not Message.objects.exists()


def test_an_empty_notice_is_a_bad_request(bob):
    with pytest.raises(Exception) as raised:
        notice_send_to(audience="user", target_id=bob.pk, text="   ")

    assert getattr(raised.value, "code", None) == 0
    assert not Notice.objects.exists() and not Message.objects.exists()


# --- To a shop, to a group -----------------------------------------------------------------------


def test_a_notice_to_a_shop_reaches_its_owner_and_its_agents(shop, alice, bob, carol, dave):
    with pushes() as sent:
        notice = notice_send_to(audience="shop", target_id=shop.pk, text="New price list")

    assert sorted(group for group, _, _ in sent) == sorted(realtime.user_group(u.pk) for u in (alice, bob, carol))
    assert {(code, result["chat_type"], result["msg"]) for _, code, result in sent} == {(200, 3, "New price list")}
    for user in (alice, bob, carol):
        assert row_of(user, f"sys_{user.pk}")["unread_count"] == 1
    assert recent(dave)["rows"] == []
    assert notice.recipients == 3


def test_an_owner_who_is_also_an_agent_gets_a_shop_notice_once(shop, alice):
    shop_services.agent_add(shop=shop, user=alice)

    with pushes() as sent:
        notice_send_to(audience="shop", target_id=shop.pk, text="Once")

    assert [group for group, _, _ in sent].count(realtime.user_group(alice.pk)) == 1
    assert history(alice, f"sys_{alice.pk}") == ["Once"]


def test_a_notice_to_a_group_reaches_its_current_members_only(group_id, alice, bob, carol):
    with pushes() as sent:
        notice = notice_send_to(audience="group", target_id=group_id, text="Trip moved to Sunday")

    assert sorted(group for group, _, _ in sent) == sorted([realtime.user_group(alice.pk), realtime.user_group(bob.pk)])
    assert row_of(carol, f"sys_{carol.pk}") is None
    assert notice.recipients == 2


# --- To everyone ---------------------------------------------------------------------------------


def test_a_notice_to_everyone_is_stored_once_and_pushed_once_whatever_the_number_of_users(alice, bob):
    # given many users
    for _ in range(30):
        make_user()

    # when
    with pushes() as sent:
        notice = notice_send_to(audience="all", target_id=None, text="We moved to a new server")

    # then one notice, one message in the shared box, one push, and no row per user
    assert Notice.objects.count() == 1 and notice.recipients == 1
    message = Message.objects.get()
    assert (message.conversation.chat_id, message.seq, message.to_uid) == ("sys_0", 1, 0)
    assert [(group, code) for group, code, _ in sent] == [(realtime.everyone_group(), 200)]
    result = sent[0][2]
    assert (result["chat_id"], result["chat_type"], result["from_uid"], result["to_uid"]) == ("sys_0", 3, 0, 0)
    assert "id" not in result
    assert not Participant.objects.filter(conversation__chat_id="sys_0").exists()


def test_a_user_who_was_offline_sees_the_notice_to_everyone_unread_in_their_next_list(alice, bob, settings):
    # given two notices to everyone while bob was away
    notice_send_to(audience="all", target_id=None, text="first")
    notice_send_to(audience="all", target_id=None, text="second")

    # when bob lists his conversations
    bobs = recent(bob)

    # then the shared box is there, from the platform, with both unread
    [row] = bobs["rows"]
    assert (row["chat_id"], row["chat_type"], row["friend_uid"], row["friend_name"]) == (
        "sys_0", 3, 0, settings.IM_SYSTEM_NAME)
    assert (row["last_msg"], row["unread_count"], bobs["unread_count"]) == ("second", 2, 2)
    assert history(bob, "sys_0") == ["first", "second"]


def test_each_user_reads_the_shared_box_on_their_own(alice, bob):
    notice_send_to(audience="all", target_id=None, text="hello all")
    recent(alice), recent(bob)

    assert run(bob, "chat", "setChatRead", {"chat_id": "sys_0"})["code"] == 1
    notice_send_to(audience="all", target_id=None, text="and again")

    assert row_of(bob, "sys_0")["unread_count"] == 1
    assert row_of(alice, "sys_0")["unread_count"] == 2


def test_a_user_created_after_a_notice_to_everyone_does_not_see_it_but_sees_the_next(alice):
    # given a notice, then a new user
    notice_send_to(audience="all", target_id=None, text="before you came")
    newcomer = make_user(username="newcomer")

    # then the newcomer sees nothing of it
    assert recent(newcomer) == {"rows": [], "unread_count": 0}
    assert history(newcomer, "sys_0") == []

    # and when the next notice comes, only that one
    notice_send_to(audience="all", target_id=None, text="after you came")
    row = row_of(newcomer, "sys_0")
    assert (row["last_msg"], row["unread_count"]) == ("after you came", 1)
    assert history(newcomer, "sys_0") == ["after you came"]


def test_a_notice_to_an_unknown_target_is_not_found(alice):
    for audience in ("user", "shop", "group"):
        with pytest.raises(Exception) as raised:
            notice_send_to(audience=audience, target_id=987654, text="nobody")
        assert getattr(raised.value, "code", None) == -404, audience
    assert not Notice.objects.exists()


# --- manage.py sendnotice ------------------------------------------------------------------------


def test_sendnotice_all_prints_the_notice_id_alone_on_the_last_line(alice):
    out, err = command("--all", "Scheduled maintenance")

    notice = Notice.objects.get()
    assert last_line(out) == str(notice.pk)
    assert (notice.audience, notice.text, notice.recipients) == ("all", "Scheduled maintenance", 1)
    assert Message.objects.get().conversation.chat_id == "sys_0"
    assert "REDIS_URL" in err  # the embedded layer cannot reach a server's sockets: it says so


def test_sendnotice_to_a_user_a_shop_and_a_group(shop, group_id, alice, bob, carol, dave):
    # when
    to_user, _ = command("--user", str(dave.pk), "for dave")
    to_shop, _ = command("--shop", str(shop.pk), "for the shop")
    to_group, _ = command("--group", str(group_id), "for the group")

    # then each prints its own notice and reaches its audience
    ids = [int(last_line(out)) for out in (to_user, to_shop, to_group)]
    assert list(Notice.objects.order_by("pk").values_list("pk", "audience", "target_id")) == [
        (ids[0], "user", dave.pk), (ids[1], "shop", shop.pk), (ids[2], "group", group_id),
    ]
    assert history(dave, f"sys_{dave.pk}") == ["for dave"]
    assert history(alice, f"sys_{alice.pk}") == ["for the shop", "for the group"]
    assert history(bob, f"sys_{bob.pk}") == ["for the shop", "for the group"]
    assert history(carol, f"sys_{carol.pk}") == ["for the shop"]  # carol left the group


@pytest.mark.parametrize("target", ["--user", "--shop", "--group"])
def test_sendnotice_refuses_an_unknown_target(alice, target):
    with pytest.raises(CommandError):
        command(target, "987654", "to nobody")

    assert not Notice.objects.exists() and not Message.objects.exists()


def test_sendnotice_needs_exactly_one_audience_and_some_text(alice):
    with pytest.raises(CommandError):
        command("hello")
    with pytest.raises(CommandError):
        command("--all", "--user", str(alice.pk), "hello")
    with pytest.raises(CommandError):
        command("--all", "  ")

    assert not Notice.objects.exists()


# --- The admin's notice form ---------------------------------------------------------------------


@pytest.fixture
def superuser_client(db) -> Client:
    root = user_create(username="root", is_staff=True)
    root.is_superuser = True
    root.save(update_fields=["is_superuser"])
    client = Client()
    client.force_login(root)
    return client


ADD_URL = "admin:chat_notice_add"


def test_a_superuser_sends_a_notice_from_the_admin_add_form(superuser_client, bob):
    # when
    with pushes() as sent:
        response = superuser_client.post(reverse(ADD_URL), {"audience": "user", "target_id": bob.pk,
                                                            "text": "Hello from staff", "_save": "Save"})

    # then it is sent as the command would, recorded with who sent it
    assert response.status_code == 302, response.content[:500]
    notice = Notice.objects.get()
    assert (notice.audience, notice.target_id, notice.text, notice.sent_by.username) == (
        "user", bob.pk, "Hello from staff", "root")
    assert [(group, code, result["msg"]) for group, code, result in sent] == [
        (realtime.user_group(bob.pk), 200, "Hello from staff")
    ]
    assert row_of(bob, f"sys_{bob.pk}")["unread_count"] == 1
    assert superuser_client.get(reverse("admin:chat_notice_changelist")).status_code == 200


def test_a_notice_to_everyone_from_the_admin_is_stored_once(superuser_client, alice, bob):
    with pushes() as sent:
        response = superuser_client.post(reverse(ADD_URL), {"audience": "all", "text": "All hands", "_save": "Save"})

    assert response.status_code == 302
    assert Message.objects.count() == 1 and Notice.objects.count() == 1
    assert [group for group, _, _ in sent] == [realtime.everyone_group()]


def test_the_admin_form_reports_an_unknown_target_as_an_error_and_not_as_added(superuser_client):
    # when staff send a notice to a user who does not exist
    response = superuser_client.post(reverse(ADD_URL), {"audience": "user", "target_id": 987654,
                                                        "text": "to nobody", "_save": "Save"}, follow=True)

    # then the form comes back saying why, and not that a notice was added (nothing was)
    assert response.status_code == 200
    assert "no such user" in response.context["adminform"].form.non_field_errors()
    shown = [(message.level_tag, str(message)) for message in response.context["messages"]]
    assert not [text for level, text in shown if level == "success"], shown
    assert not Notice.objects.exists() and not Message.objects.exists()
    assert not LogEntry.objects.exists()  # no "added" entry for a notice that was never stored


def test_staff_who_are_not_superusers_cannot_send_notices(bob):
    staff = user_create(username="staffer", is_staff=True)
    client = Client()
    client.force_login(staff)

    response = client.post(reverse(ADD_URL), {"audience": "all", "text": "sneaky", "_save": "Save"})

    assert response.status_code == 403
    assert not Notice.objects.exists()
