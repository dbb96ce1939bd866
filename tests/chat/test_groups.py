"""Group chat through the handler table: group.*, group messages, unread counts and leaving (PROTOCOL.md 4).

Requests go through `chat.handlers.run`, as the consumer runs them. The test's transaction never
commits, so each request's on-commit callbacks are run when it returns, inside a collector: the raw
`Push` objects are what the consumer would hand the channel layer (membership-only pushes, which
have no text, included).
"""

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db.models import F
from django.test import TestCase

from chat import handlers, realtime
from chat.models import ChatGroup, Conversation, Message, Participant
from chat.protocol import Envelope, dumps
from chat.realtime import Push
from tests.factories import BASE_URL, caller_of, make_user, open_socket, request, synchronously

pytestmark = pytest.mark.django_db


@dataclass
class Outcome:
    """One request: the reply as the client decodes it, and the pushes its committed writes made."""

    frame: dict
    pushes: list[Push]

    @property
    def code(self) -> int:
        return self.frame["code"]

    @property
    def result(self):
        return self.frame["result"]

    def decoded(self) -> list[tuple[str, int, dict, str | None]]:
        """(group, code, result, exclude_channel) of every push that sends the client something."""
        out = []
        for push in self.pushes:
            if push.text:
                frame = json.loads(push.text)
                out.append((push.group, frame["code"], frame["result"], push.exclude_channel))
        return out


def run(user, cls: str, action: str, content: dict | None = None, *, channel: str | None = None) -> Outcome:
    caller = caller_of(user, channel_name=channel)
    with realtime.collecting() as pushes:
        with TestCase.captureOnCommitCallbacks(execute=True):
            frame, _ = handlers.run(caller, Envelope(cls=cls, action=action, content=content or {}))
    return Outcome(json.loads(dumps(frame)), list(pushes))


def ok(outcome: Outcome, code: int = 1) -> Outcome:
    assert outcome.code == code, outcome.frame
    return outcome


def create(owner, *members, name: str = "Hikers") -> int:
    outcome = ok(run(owner, "group", "create", {"name": name, "uids": [m.pk for m in members]}))
    return outcome.result["group_id"]


def say(user, group_id: int, msg: str, *, channel: str | None = None, by_chat_id: bool = False) -> Outcome:
    content = {"chat_type": 2, "msg_type": 1, "msg": msg, "shop_id": 0, "role_type": 0}
    if by_chat_id:
        content.update(to_uid=None, chat_id=f"g{group_id}")
    else:
        content.update(to_uid=group_id, chat_id="")
    return run(user, "chat", "sendMsg", content, channel=channel)


def recent(user) -> dict:
    return ok(run(user, "user", "recentChat"), 102).result


def row_of(user, chat_id: str) -> dict | None:
    rows = [row for row in recent(user)["rows"] if row["chat_id"] == chat_id]
    return rows[0] if rows else None


def history(user, chat_id: str) -> list[str]:
    """The messages the user can read in a conversation, oldest first."""
    record = ok(run(user, "user", "chatRecord", {"chat_id": chat_id}), 201).result
    return [row["msg"] for row in reversed(record["rows"])]


def members_of(user, group_id: int) -> list[tuple[int, str]]:
    result = ok(run(user, "group", "members", {"group_id": group_id}), 101).result
    return [(member["id"], member["role"]) for member in result["members"]]


@pytest.fixture
def dave(db):
    return make_user(username="dave", nickname="Dave")


# --- group.create ---------------------------------------------------------------------------------


def test_creating_a_group_makes_the_caller_owner_and_stores_no_message(alice, bob, carol):
    # when
    outcome = run(alice, "group", "create", {"name": "Hikers", "uids": [bob.pk, carol.pk]})

    # then
    group_id = outcome.result["group_id"]
    assert outcome.frame == {"code": 1, "msg": None,
                             "result": {"group_id": group_id, "chat_id": f"g{group_id}", "name": "Hikers"}}
    assert ChatGroup.objects.get(pk=group_id).owner == alice
    assert members_of(alice, group_id) == [(alice.pk, "owner"), (bob.pk, "member"), (carol.pk, "member")]
    assert not Message.objects.exists()
    assert Conversation.objects.get(chat_id=f"g{group_id}").last_seq == 0


def test_every_first_member_the_owner_included_gets_306_invited_naming_only_the_invited_and_joins_the_chat_group(
        alice, bob, carol):
    outcome = run(alice, "group", "create", {"name": "Hikers", "uids": [bob.pk, alice.pk, carol.pk]},
                  channel="alice-1")

    # the owner created the group, she was not invited: `uids` names bob and carol only
    group_id = outcome.result["group_id"]
    event = {"group_id": group_id, "chat_id": f"g{group_id}", "event": "invited",
             "uids": [bob.pk, carol.pk], "name": "Hikers"}
    users = sorted(realtime.user_group(u.pk) for u in (alice, bob, carol))
    assert sorted(p.group for p in outcome.pushes if p.group.startswith("user.") and p.text) == users
    # every socket of theirs joins the chat group, the acting one too (it is not told)
    assert sorted((p.group, p.join) for p in outcome.pushes if p.join) == [
        (user, realtime.chat_group(group_id)) for user in users]
    for group, code, result, _ in outcome.decoded():
        assert (code, result) == (306, event), group


def test_a_group_row_shows_in_the_members_lists_with_the_group_as_friend(alice, bob):
    group_id = create(alice, bob, name="Hikers")

    row = row_of(bob, f"g{group_id}")

    assert row is not None
    assert (row["chat_type"], row["friend_uid"], row["friend_name"], row["unread_count"]) == (2, group_id, "Hikers", 0)
    assert row["friend_avatar"].startswith("http")


def test_creating_a_group_with_an_unknown_user_is_not_found_and_creates_nothing(alice):
    outcome = run(alice, "group", "create", {"name": "Ghosts", "uids": [987654]})

    assert outcome.code == -404 and outcome.pushes == []
    assert not ChatGroup.objects.exists()


def test_a_group_needs_a_name(alice, bob):
    outcome = run(alice, "group", "create", {"name": "  ", "uids": [bob.pk]})

    assert (outcome.code, outcome.frame["msg"]) == (0, "name: required")


def test_a_group_larger_than_im_max_group_members_cannot_be_created(alice, bob, carol, settings):
    settings.IM_MAX_GROUP_MEMBERS = 2

    too_big = run(alice, "group", "create", {"name": "Crowd", "uids": [bob.pk, carol.pk]})
    just_right = run(alice, "group", "create", {"name": "Pair", "uids": [bob.pk]})

    assert (too_big.code, too_big.frame["msg"]) == (0, "uids: a group has at most 2 members")
    assert just_right.code == 1
    assert ChatGroup.objects.count() == 1


# --- group.invite / group.leave -------------------------------------------------------------------


def test_an_invited_user_gets_306_and_sees_only_the_messages_sent_after(alice, bob, dave):
    # given a group that has talked
    group_id = create(alice, bob)
    ok(say(alice, group_id, "before dave"))

    # when bob invites dave
    outcome = ok(run(bob, "group", "invite", {"group_id": group_id, "uids": [dave.pk]}))
    ok(say(alice, group_id, "after dave"))

    # then the members and dave hear it, dave's sockets join the chat group, and his history starts now
    assert outcome.result == {"group_id": group_id, "uids": [dave.pk]}
    event = {"group_id": group_id, "chat_id": f"g{group_id}", "event": "invited", "uids": [dave.pk], "name": "Hikers"}
    assert [(g, c, r) for g, c, r, _ in outcome.decoded()] == [
        (realtime.chat_group(group_id), 306, event),
        (realtime.user_group(dave.pk), 306, event),
    ]
    assert [(p.group, p.join) for p in outcome.pushes if p.join] == [
        (realtime.user_group(dave.pk), realtime.chat_group(group_id))]
    assert history(dave, f"g{group_id}") == ["after dave"]
    assert row_of(dave, f"g{group_id}")["unread_count"] == 1
    assert history(bob, f"g{group_id}") == ["before dave", "after dave"]


def test_only_members_invite(alice, bob, carol, dave):
    group_id = create(alice, bob)

    outcome = run(carol, "group", "invite", {"group_id": group_id, "uids": [dave.pk]})

    assert outcome.code == -403 and outcome.pushes == []
    assert (dave.pk, "member") not in members_of(alice, group_id)


def test_inviting_into_a_group_that_does_not_exist_is_not_found(alice, bob):
    assert run(alice, "group", "invite", {"group_id": 987654, "uids": [bob.pk]}).code == -404


def test_inviting_beyond_im_max_group_members_is_refused(alice, bob, carol, dave, settings):
    settings.IM_MAX_GROUP_MEMBERS = 3
    group_id = create(alice, bob)

    too_many = run(alice, "group", "invite", {"group_id": group_id, "uids": [carol.pk, dave.pk]})
    one_more = run(alice, "group", "invite", {"group_id": group_id, "uids": [carol.pk]})

    assert (too_many.code, too_many.frame["msg"]) == (0, "uids: a group has at most 3 members")
    assert one_more.code == 1
    assert len(members_of(alice, group_id)) == 3


def test_inviting_someone_who_is_already_a_member_does_not_count_against_the_limit(alice, bob, carol, settings):
    # given a group of 2 that may hold 3
    settings.IM_MAX_GROUP_MEMBERS = 3
    group_id = create(alice, bob)

    # when a client invites a member who is already in, along with one new user
    outcome = run(alice, "group", "invite", {"group_id": group_id, "uids": [bob.pk, carol.pk]})

    # then only carol is added, and the group is exactly full
    assert outcome.code == 1, outcome.frame
    assert outcome.result["uids"] == [carol.pk]
    assert len(members_of(alice, group_id)) == 3


def test_a_member_who_leaves_is_announced_and_their_sockets_leave_the_chat_group(alice, bob, carol):
    group_id = create(alice, bob, carol)

    outcome = ok(run(carol, "group", "leave", {"group_id": group_id}, channel="carol-1"))

    event = {"group_id": group_id, "chat_id": f"g{group_id}", "event": "left", "uids": [carol.pk], "name": "Hikers"}
    assert [(g, c, r) for g, c, r, _ in outcome.decoded()] == [(realtime.chat_group(group_id), 306, event)]
    leaving = [p for p in outcome.pushes if p.leave is not None]
    assert [(p.group, p.leave, p.text) for p in leaving] == [
        (realtime.user_group(carol.pk), realtime.chat_group(group_id), None)
    ]
    assert members_of(alice, group_id) == [(alice.pk, "owner"), (bob.pk, "member")]


def test_the_owner_cannot_leave(alice, bob):
    group_id = create(alice, bob)

    outcome = run(alice, "group", "leave", {"group_id": group_id})

    assert outcome.code == 0 and outcome.frame["msg"].startswith("group_id: ")
    assert outcome.pushes == []
    assert members_of(alice, group_id)[0] == (alice.pk, "owner")


def test_a_member_who_left_and_is_invited_again_sees_only_the_new_messages(alice, bob, carol):
    # given carol saw one message, left, and missed another
    group_id = create(alice, bob, carol)
    ok(say(alice, group_id, "first"))
    ok(run(carol, "group", "leave", {"group_id": group_id}))
    ok(say(alice, group_id, "while away"))

    # when she is invited again
    outcome = ok(run(bob, "group", "invite", {"group_id": group_id, "uids": [carol.pk]}))
    ok(say(alice, group_id, "welcome back"))

    # then she is a plain member again, and reads only what came after she came back
    assert outcome.result["uids"] == [carol.pk]
    assert (carol.pk, "member") in members_of(alice, group_id)
    assert history(carol, f"g{group_id}") == ["welcome back"]
    assert row_of(carol, f"g{group_id}")["unread_count"] == 1
    assert ok(say(carol, group_id, "hi again")).result["seq"] == 4


# --- group.kick -----------------------------------------------------------------------------------


def test_the_owner_kicks_a_member_who_gets_306_kicked_and_whose_sockets_leave_the_chat_group(alice, bob, carol):
    group_id = create(alice, bob, carol)

    outcome = ok(run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk}))

    assert outcome.result == {"group_id": group_id, "uid": carol.pk}
    event = {"group_id": group_id, "chat_id": f"g{group_id}", "event": "kicked", "uids": [carol.pk],
             "name": "Hikers"}
    # the chat group still holds carol's sockets when the 306 goes out, so she hears it too
    assert [(g, c, r) for g, c, r, _ in outcome.decoded()] == [(realtime.chat_group(group_id), 306, event)]
    assert [(p.group, p.leave) for p in outcome.pushes if p.leave] == [
        (realtime.user_group(carol.pk), realtime.chat_group(group_id))
    ]
    assert outcome.pushes.index(next(p for p in outcome.pushes if p.leave)) > 0  # after the 306
    assert (carol.pk, "member") not in members_of(alice, group_id)


def test_a_kicked_member_can_no_longer_send_or_list_members(alice, bob, carol):
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk}))

    sent = say(carol, group_id, "let me back")
    members = run(carol, "group", "members", {"group_id": group_id})

    assert sent.code == -403 and sent.pushes == []
    assert members.code == -403
    assert not Message.objects.exists()


def test_a_plain_member_cannot_kick(alice, bob, carol):
    group_id = create(alice, bob, carol)

    outcome = run(bob, "group", "kick", {"group_id": group_id, "uid": carol.pk})

    assert outcome.code == -403 and outcome.pushes == []


def test_an_admin_kicks_members_but_not_other_admins_nor_the_owner(alice, bob, carol, dave):
    # given bob and carol are admins
    group_id = create(alice, bob, carol, dave)
    for admin in (bob, carol):
        ok(run(alice, "group", "setRole", {"group_id": group_id, "uid": admin.pk, "role": "admin"}))

    # when
    admin_by_admin = run(bob, "group", "kick", {"group_id": group_id, "uid": carol.pk})
    owner_by_admin = run(bob, "group", "kick", {"group_id": group_id, "uid": alice.pk})
    member_by_admin = run(bob, "group", "kick", {"group_id": group_id, "uid": dave.pk})
    admin_by_owner = run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk})

    # then
    assert (admin_by_admin.code, owner_by_admin.code) == (-403, -403)
    assert admin_by_admin.pushes == owner_by_admin.pushes == []
    assert (member_by_admin.code, admin_by_owner.code) == (1, 1)
    assert members_of(alice, group_id) == [(alice.pk, "owner"), (bob.pk, "admin")]


def test_kicking_someone_who_is_not_a_member_is_not_found(alice, bob, carol):
    group_id = create(alice, bob)

    assert run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk}).code == -404


# --- Mute and kick survive leaving and being invited back -----------------------------------------


def test_a_muted_member_who_leaves_and_is_invited_back_is_still_muted(alice, bob, carol):
    # given the owner muted carol, and carol left
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "mute", {"group_id": group_id, "uid": carol.pk}))
    ok(run(carol, "group", "leave", {"group_id": group_id}))

    # when a plain member invites her back
    ok(run(bob, "group", "invite", {"group_id": group_id, "uids": [carol.pk]}))

    # then she is a member again, still muted, until the owner unmutes her
    assert (carol.pk, "member") in members_of(alice, group_id)
    assert say(carol, group_id, "I'm back").code == -403
    ok(run(alice, "group", "mute", {"group_id": group_id, "uid": carol.pk, "muted": False}))
    assert say(carol, group_id, "now I'm back").code == 1


def test_a_plain_member_cannot_invite_back_someone_who_was_kicked(alice, bob, carol, dave):
    # given the owner kicked carol
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk}))

    # when bob invites her back, together with a newcomer
    outcome = run(bob, "group", "invite", {"group_id": group_id, "uids": [dave.pk, carol.pk]})

    # then nothing happens: not carol, not dave
    assert (outcome.code, outcome.pushes) == (-403, [])
    assert outcome.frame["msg"] == (f"uids: {carol.pk} was removed from this group; "
                                    "only the owner or an admin may invite them back")
    assert members_of(alice, group_id) == [(alice.pk, "owner"), (bob.pk, "member")]


def test_a_kicked_user_cannot_invite_themself_back(alice, bob, carol):
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk}))

    outcome = run(carol, "group", "invite", {"group_id": group_id, "uids": [carol.pk]})

    assert (outcome.code, outcome.pushes) == (-403, [])
    assert (carol.pk, "member") not in members_of(alice, group_id)


def test_an_admin_invites_back_a_kicked_member_who_returns_a_plain_member_still_muted(alice, bob, carol):
    # given carol, a muted admin, was kicked by the owner
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "setRole", {"group_id": group_id, "uid": bob.pk, "role": "admin"}))
    ok(run(alice, "group", "setRole", {"group_id": group_id, "uid": carol.pk, "role": "admin"}))
    ok(run(alice, "group", "mute", {"group_id": group_id, "uid": carol.pk}))
    ok(run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk}))

    # when the admin bob invites her back
    outcome = ok(run(bob, "group", "invite", {"group_id": group_id, "uids": [carol.pk]}))

    # then she is back, as a plain member, and still muted
    assert outcome.result["uids"] == [carol.pk]
    assert members_of(alice, group_id) == [(alice.pk, "owner"), (bob.pk, "admin"), (carol.pk, "member")]
    assert say(carol, group_id, "thanks").code == -403


def test_a_kicked_member_the_owner_took_back_who_then_leaves_may_be_invited_by_anyone(alice, bob, carol):
    # given carol was kicked, taken back by the owner, then left on her own
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk}))
    ok(run(alice, "group", "invite", {"group_id": group_id, "uids": [carol.pk]}))
    ok(run(carol, "group", "leave", {"group_id": group_id}))

    # when a plain member invites her
    outcome = run(bob, "group", "invite", {"group_id": group_id, "uids": [carol.pk]})

    # then her last removal was her own choice, so she is back
    assert (outcome.code, outcome.result["uids"]) == (1, [carol.pk])


def test_an_admin_demoted_to_member_can_no_longer_invite_back_a_kicked_member(alice, bob, carol):
    # given bob, an admin, kicked carol and was then made a plain member again
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "setRole", {"group_id": group_id, "uid": bob.pk, "role": "admin"}))
    ok(run(bob, "group", "kick", {"group_id": group_id, "uid": carol.pk}))
    ok(run(alice, "group", "setRole", {"group_id": group_id, "uid": bob.pk, "role": "member"}))

    outcome = run(bob, "group", "invite", {"group_id": group_id, "uids": [carol.pk]})

    assert (outcome.code, outcome.pushes) == (-403, [])
    assert (carol.pk, "member") not in members_of(alice, group_id)


def test_a_kicked_member_who_is_invited_to_a_new_group_does_not_get_back_into_the_old_one(alice, bob, carol):
    # given carol was kicked; bob makes a group of his own with her
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "kick", {"group_id": group_id, "uid": carol.pk}))
    create(bob, carol, name="Bob's")

    # then the old group still refuses her
    assert say(carol, group_id, "hello?").code == -403
    assert run(carol, "group", "members", {"group_id": group_id}).code == -403


def test_nobody_invites_into_a_dissolved_group_not_even_its_owner(alice, bob, carol):
    group_id = create(alice, bob)
    ok(run(alice, "group", "dissolve", {"group_id": group_id}))

    outcome = run(alice, "group", "invite", {"group_id": group_id, "uids": [carol.pk]})

    assert (outcome.code, outcome.pushes) == (-404, [])
    assert not Participant.objects.filter(user=carol).exists()


# --- group.members / rename / setRole / mute ------------------------------------------------------


def test_members_answers_101_with_each_members_id_nickname_avatar_and_role(alice, bob):
    group_id = create(alice, bob)

    outcome = run(bob, "group", "members", {"group_id": group_id})

    assert outcome.frame == {
        "code": 101,
        "msg": None,
        "result": {
            "group_id": group_id,
            "members": [
                {"id": alice.pk, "nickname": "Alice", "avatar": f"{BASE_URL}/media/avatars/alice.png",
                 "role": "owner"},
                {"id": bob.pk, "nickname": "Bob", "avatar": "https://cdn.example.com/bob.png", "role": "member"},
            ],
        },
    }


def test_a_non_member_cannot_list_the_members(alice, bob, carol):
    group_id = create(alice, bob)

    outcome = run(carol, "group", "members", {"group_id": group_id})

    assert (outcome.code, outcome.result) == (-403, None)


def test_renaming_sends_306_renamed_with_no_uids_and_the_lists_show_the_new_name(alice, bob):
    group_id = create(alice, bob, name="Hikers")
    ok(say(bob, group_id, "hello"))

    outcome = ok(run(alice, "group", "rename", {"group_id": group_id, "name": "Climbers"}))

    assert outcome.result == {"group_id": group_id, "name": "Climbers"}
    assert [(g, c, r) for g, c, r, _ in outcome.decoded()] == [
        (realtime.chat_group(group_id), 306,
         {"group_id": group_id, "chat_id": f"g{group_id}", "event": "renamed", "uids": [], "name": "Climbers"}),
    ]
    for member in (alice, bob):
        assert row_of(member, f"g{group_id}")["friend_name"] == "Climbers"
    assert ChatGroup.objects.get(pk=group_id).name == "Climbers"


def test_a_plain_member_cannot_rename(alice, bob):
    group_id = create(alice, bob, name="Hikers")

    outcome = run(bob, "group", "rename", {"group_id": group_id, "name": "Mine now"})

    assert outcome.code == -403 and outcome.pushes == []
    assert ChatGroup.objects.get(pk=group_id).name == "Hikers"


def test_only_the_owner_sets_roles_and_an_admin_may_rename(alice, bob, carol):
    group_id = create(alice, bob, carol)

    by_member = run(bob, "group", "setRole", {"group_id": group_id, "uid": carol.pk, "role": "admin"})
    by_owner = run(alice, "group", "setRole", {"group_id": group_id, "uid": bob.pk, "role": "admin"})
    bad_role = run(alice, "group", "setRole", {"group_id": group_id, "uid": carol.pk, "role": "owner"})

    assert by_member.code == -403 and bad_role.code == 0
    assert by_owner.frame == {"code": 1, "msg": None, "result": {"group_id": group_id, "uid": bob.pk, "role": "admin"}}
    assert members_of(alice, group_id) == [(alice.pk, "owner"), (bob.pk, "admin"), (carol.pk, "member")]
    assert run(bob, "group", "rename", {"group_id": group_id, "name": "By bob"}).code == 1

    ok(run(alice, "group", "setRole", {"group_id": group_id, "uid": bob.pk, "role": "member"}))
    assert run(bob, "group", "rename", {"group_id": group_id, "name": "Again"}).code == -403


def test_a_muted_member_cannot_send_until_unmuted(alice, bob, carol):
    group_id = create(alice, bob, carol)

    muted = run(alice, "group", "mute", {"group_id": group_id, "uid": bob.pk})
    while_muted = say(bob, group_id, "can you hear me")
    others_still_talk = say(carol, group_id, "we can")
    ok(run(alice, "group", "mute", {"group_id": group_id, "uid": bob.pk, "muted": False}))
    unmuted = say(bob, group_id, "now you can")

    assert muted.frame == {"code": 1, "msg": None, "result": {"group_id": group_id, "uid": bob.pk, "muted": True}}
    assert while_muted.code == -403 and while_muted.pushes == []
    assert (others_still_talk.code, unmuted.code) == (1, 1)
    assert list(Message.objects.order_by("seq").values_list("msg", flat=True)) == ["we can", "now you can"]


def test_a_muted_admin_cannot_unmute_themself_and_only_the_owner_mutes_admins(alice, bob, carol):
    # given bob and carol are admins, and the owner muted bob
    group_id = create(alice, bob, carol)
    for admin in (bob, carol):
        ok(run(alice, "group", "setRole", {"group_id": group_id, "uid": admin.pk, "role": "admin"}))
    ok(run(alice, "group", "mute", {"group_id": group_id, "uid": bob.pk}))

    # when bob unmutes himself, carol unmutes him, and bob mutes carol or the owner
    by_himself = run(bob, "group", "mute", {"group_id": group_id, "uid": bob.pk, "muted": False})
    by_admin = run(carol, "group", "mute", {"group_id": group_id, "uid": bob.pk, "muted": False})
    of_admin = run(bob, "group", "mute", {"group_id": group_id, "uid": carol.pk})
    of_owner = run(carol, "group", "mute", {"group_id": group_id, "uid": alice.pk})

    # then all are refused, and only carol may still talk
    assert [o.code for o in (by_himself, by_admin, of_admin, of_owner)] == [-403, -403, -403, -403]
    assert (say(bob, group_id, "hello?").code, say(carol, group_id, "hi").code, say(alice, group_id, "hey").code) == (
        -403, 1, 1)


def test_a_plain_member_cannot_mute(alice, bob, carol):
    group_id = create(alice, bob, carol)

    assert run(bob, "group", "mute", {"group_id": group_id, "uid": carol.pk}).code == -403
    assert say(carol, group_id, "still here").code == 1


# --- group.dissolve -------------------------------------------------------------------------------


def test_only_the_owner_dissolves_a_group(alice, bob, carol):
    group_id = create(alice, bob, carol)
    ok(run(alice, "group", "setRole", {"group_id": group_id, "uid": bob.pk, "role": "admin"}))

    assert run(bob, "group", "dissolve", {"group_id": group_id}).code == -403
    assert run(carol, "group", "dissolve", {"group_id": group_id}).code == -403
    assert ChatGroup.objects.get(pk=group_id).dissolved_at is None


def test_dissolving_sends_306_dissolved_empties_the_chat_group_and_later_sends_are_not_found(alice, bob):
    # given
    group_id = create(alice, bob)
    ok(say(bob, group_id, "last words"))

    # when
    outcome = ok(run(alice, "group", "dissolve", {"group_id": group_id}))

    # then
    event = {"group_id": group_id, "chat_id": f"g{group_id}", "event": "dissolved", "uids": [], "name": "Hikers"}
    assert [(g, c, r) for g, c, r, _ in outcome.decoded()] == [(realtime.chat_group(group_id), 306, event)]
    assert [(p.group, p.leave) for p in outcome.pushes if p.leave] == [
        (realtime.chat_group(group_id), realtime.chat_group(group_id))]
    assert outcome.pushes.index(next(p for p in outcome.pushes if p.leave)) > 0  # after the 306
    for member in (alice, bob):
        sent = say(member, group_id, "anyone?")
        assert sent.code == -404 and sent.pushes == []
        assert run(member, "group", "members", {"group_id": group_id}).code == -404
        assert history(member, f"g{group_id}") == ["last words"]
    assert Message.objects.count() == 1


# --- chat.sendMsg with chat_type 2 ----------------------------------------------------------------


@pytest.mark.parametrize("by_chat_id", [False, True], ids=["to_uid", "chat_id"])
def test_a_group_message_is_one_push_to_the_chat_group_with_307_for_the_senders_other_sockets(
        alice, bob, carol, by_chat_id):
    group_id = create(alice, bob, carol)

    outcome = ok(say(alice, group_id, "hello all", channel="alice-1", by_chat_id=by_chat_id))

    reply = outcome.result
    assert (reply["chat_id"], reply["seq"]) == (f"g{group_id}", 1)
    [push] = outcome.pushes
    assert (push.group, push.exclude_channel, push.sender_uid) == (realtime.chat_group(group_id), "alice-1", alice.pk)
    pushed, own = json.loads(push.text), json.loads(push.own_text)
    assert (pushed["code"], own["code"]) == (200, 307)
    assert pushed["result"] == own["result"] == {
        "nickname": "Alice", "avatar": f"{BASE_URL}/media/avatars/alice.png", "id": alice.pk,
        "chat_id": f"g{group_id}", "chat_type": 2, "msg_type": 1, "msg": "hello all",
        "createtime": reply["createtime"], "msg_id": reply["msg_id"], "seq": 1, "from_uid": alice.pk,
        "to_uid": group_id, "client_msg_id": None,
    }


def test_only_members_send_to_a_group(alice, bob, carol):
    group_id = create(alice, bob)

    by_to_uid = say(carol, group_id, "let me in")
    by_chat_id = say(carol, group_id, "let me in", by_chat_id=True)

    assert (by_to_uid.code, by_chat_id.code) == (-403, -403)
    assert by_to_uid.pushes == by_chat_id.pushes == []
    assert not Message.objects.exists()


def test_sending_to_a_group_that_does_not_exist_is_not_found(alice):
    assert say(alice, 987654, "hello?").code == -404


def test_a_group_chat_id_that_does_not_match_to_uid_is_a_bad_request(alice, bob):
    group_id = create(alice, bob)
    content = {"to_uid": group_id + 1, "chat_id": f"g{group_id}", "chat_type": 2, "msg_type": 1, "msg": "x"}

    outcome = run(alice, "chat", "sendMsg", content)

    assert (outcome.code, outcome.frame["msg"]) == (0, "chat_id: does not match to_uid")


# --- Unread counts, per member ---------------------------------------------------------------------


def test_unread_counts_are_per_member_the_sender_at_zero(alice, bob, carol):
    group_id = create(alice, bob, carol)
    chat_id = f"g{group_id}"

    # when alice sends two and bob one
    for sender, text in ((alice, "a1"), (alice, "a2"), (bob, "b1")):
        ok(say(sender, group_id, text))

    # then each member counts what others sent since they last read or wrote
    assert row_of(alice, chat_id)["unread_count"] == 1
    assert row_of(bob, chat_id)["unread_count"] == 0
    assert row_of(carol, chat_id)["unread_count"] == 3
    assert recent(carol)["unread_count"] == 3
    assert (row_of(carol, chat_id)["last_msg"], row_of(carol, chat_id)["last_uid"]) == ("b1", bob.pk)


def test_set_chat_read_resets_only_the_readers_count(alice, bob, carol):
    group_id = create(alice, bob, carol)
    chat_id = f"g{group_id}"
    ok(say(alice, group_id, "one"))
    ok(say(alice, group_id, "two"))

    outcome = ok(run(carol, "chat", "setChatRead", {"chat_id": chat_id}))
    ok(say(alice, group_id, "three"))

    assert outcome.result == {"chat_id": chat_id, "seq": 2}
    assert row_of(carol, chat_id)["unread_count"] == 1
    assert row_of(bob, chat_id)["unread_count"] == 3


def test_a_member_who_left_keeps_what_they_saw_and_nothing_after(alice, bob, carol):
    # given carol read one message, then one more came, then she left
    group_id = create(alice, bob, carol)
    chat_id = f"g{group_id}"
    ok(say(alice, group_id, "seen"))
    ok(run(carol, "chat", "setChatRead", {"chat_id": chat_id}))
    ok(say(bob, group_id, "unseen but before leaving"))
    ok(run(carol, "group", "leave", {"group_id": group_id}))

    # when the group goes on
    ok(say(alice, group_id, "after she left"))
    ok(say(bob, group_id, "still after"))

    # then her history, list row and unread count stop at her leaving
    assert history(carol, chat_id) == ["seen", "unseen but before leaving"]
    row = row_of(carol, chat_id)
    assert (row["last_msg"], row["last_uid"], row["unread_count"]) == ("unseen but before leaving", bob.pk, 1)
    assert row["last_time"] == int(Message.objects.get(msg="unseen but before leaving").created_at.timestamp())
    assert history(bob, chat_id)[-1] == "still after"

    # and reading it later reads only up to her leaving
    read = ok(run(carol, "chat", "setChatRead", {"chat_id": chat_id}))
    assert read.result["seq"] == 2
    assert row_of(carol, chat_id)["unread_count"] == 0


def test_a_group_the_member_left_is_listed_by_the_time_of_its_last_message_they_saw(alice, bob, carol):
    # given carol left a group, then chatted with bob, and the group went on without her
    group_id = create(alice, bob, carol)
    ok(say(alice, group_id, "before she left"))
    ok(run(carol, "group", "leave", {"group_id": group_id}))
    ok(run(carol, "chat", "sendMsg", {"to_uid": bob.pk, "chat_type": 1, "msg_type": 1, "msg": "hi bob"}))
    ok(say(alice, group_id, "after she left"))
    # (her last message in the group is shown with its own time: make it clearly older)
    Message.objects.filter(msg="before she left").update(created_at=F("created_at") - timedelta(seconds=120))

    # when she lists her conversations
    rows = recent(carol)["rows"]

    # then newest first as she sees them: the private chat, then the group as of her leaving
    assert [row["chat_id"] for row in rows] == [f"{min(bob.pk, carol.pk)}_{max(bob.pk, carol.pk)}", f"g{group_id}"]
    assert rows[1]["last_msg"] == "before she left"
    assert rows[0]["last_time"] >= rows[1]["last_time"]


def test_the_left_members_row_is_not_brought_back_by_later_messages(alice, bob, carol):
    group_id = create(alice, bob, carol)
    chat_id = f"g{group_id}"
    ok(say(alice, group_id, "hi"))
    ok(run(carol, "group", "leave", {"group_id": group_id}))
    ok(run(carol, "chat", "delChat", {"chat_id": chat_id}))

    ok(say(alice, group_id, "she will not see this"))

    assert row_of(carol, chat_id) is None
    assert Participant.objects.get(conversation__chat_id=chat_id, user=carol).hidden is True


# --- Events about what the acting socket just did (PROTOCOL.md section 2) -------------------------


GROUP_ACTIONS = {
    "create": lambda ids: ("create", {"name": "Second", "uids": [ids["bob"]]}),
    "invite": lambda ids: ("invite", {"group_id": ids["group"], "uids": [ids["dave"]]}),
    "rename": lambda ids: ("rename", {"group_id": ids["group"], "name": "Renamed"}),
    "kick": lambda ids: ("kick", {"group_id": ids["group"], "uid": ids["carol"]}),
    "dissolve": lambda ids: ("dissolve", {"group_id": ids["group"]}),
}


@pytest.mark.parametrize("action", list(GROUP_ACTIONS))
def test_a_306_about_what_a_socket_just_did_skips_that_socket(alice, bob, carol, dave, action):
    # given a group alice owns
    group_id = create(alice, bob, carol)
    ids = {"group": group_id, "bob": bob.pk, "carol": carol.pk, "dave": dave.pk}

    # when alice acts from one socket
    name, content = GROUP_ACTIONS[action](ids)
    outcome = ok(run(alice, "group", name, content, channel="alice-phone"))

    # then every 306 is sent to her other sockets, not back to the one that acted
    events = [(group, exclude) for group, code, _, exclude in outcome.decoded() if code == 306]
    assert events
    assert all(exclude == "alice-phone" for _, exclude in events), events


def test_a_306_left_skips_the_socket_that_left(alice, bob):
    group_id = create(alice, bob)

    outcome = ok(run(bob, "group", "leave", {"group_id": group_id}, channel="bob-phone"))

    assert [exclude for _, code, _, exclude in outcome.decoded() if code == 306] == ["bob-phone"]


# --- Through real sockets: typing and read receipts in a group ------------------------------------


async def group_of_three(alice, bob, carol):
    """alice on two sockets, bob and carol on one each, in a group alice creates from her phone."""
    phone, laptop = await open_socket(alice), await open_socket(alice)
    bobs, carols = await open_socket(bob), await open_socket(carol)
    created = await request(phone, "group", "create", {"name": "Hikers", "uids": [bob.pk, carol.pk]})
    assert created["code"] == 1, created
    for socket in (phone, laptop, bobs, carols):
        await drain(socket)
    return created["result"], (phone, laptop, bobs, carols)


async def drain(socket, timeout: float = 0.1) -> list[dict]:
    frames = []
    while not await socket.receive_nothing(timeout=timeout):
        frames.append(await socket.receive_json_from())
    return frames


async def close_all(*sockets) -> None:
    for socket in sockets:
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_group_messages_reach_every_member_socket_once_and_the_senders_other_socket_as_307(alice, bob, carol):
    group, sockets = await group_of_three(alice, bob, carol)
    phone, laptop, bobs, carols = sockets

    reply = await request(phone, "chat", "sendMsg",
                          {"to_uid": group["group_id"], "chat_type": 2, "msg_type": 1, "msg": "hi", "chat_id": ""})

    assert reply["code"] == 1
    assert [f["code"] for f in await drain(bobs)] == [200]
    assert [f["code"] for f in await drain(carols)] == [200]
    assert [f["code"] for f in await drain(laptop)] == [307]
    assert await drain(phone) == []
    await close_all(*sockets)


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_typing_in_a_group_reaches_every_other_socket_and_never_the_typing_one(alice, bob, carol):
    group, sockets = await group_of_three(alice, bob, carol)
    phone, laptop, bobs, carols = sockets

    # when alice types on her phone
    reply = await request(phone, "chat", "typing", {"chat_id": group["chat_id"]})

    # then bob, carol and alice's laptop get one 302 each (PROTOCOL.md section 2: chat.typing is no
    # exception to the echo rule); alice's phone only the reply
    typing = {"code": 302, "msg": None, "result": {"chat_id": group["chat_id"], "uid": alice.pk}}
    assert reply["code"] == 1
    names = ("phone", "laptop", "bob", "carol")
    received = {name: await drain(socket) for name, socket in zip(names, sockets)}
    assert received == {"phone": [], "laptop": [typing], "bob": [typing], "carol": [typing]}
    await close_all(*sockets)


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_a_read_receipt_in_a_group_reaches_each_other_socket_once_and_not_the_reading_one(alice, bob, carol):
    # given bob wrote to the group
    group, sockets = await group_of_three(alice, bob, carol)
    phone, laptop, bobs, carols = sockets
    await request(bobs, "chat", "sendMsg",
                  {"to_uid": group["group_id"], "chat_type": 2, "msg_type": 1, "msg": "read me", "chat_id": ""})
    for socket in sockets:
        await drain(socket)

    # when alice reads it on her phone
    reply = await request(phone, "chat", "setChatRead", {"chat_id": group["chat_id"]})

    # then
    receipt = {"code": 301, "msg": None, "result": {"chat_id": group["chat_id"], "reader_uid": alice.pk, "seq": 1}}
    assert reply["code"] == 1
    names = ("phone", "laptop", "bob", "carol")
    received = {name: await drain(socket) for name, socket in zip(names, sockets)}
    assert received == {"phone": [], "laptop": [receipt], "bob": [receipt], "carol": [receipt]}
    await close_all(*sockets)


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_a_306_invited_lists_only_the_users_just_invited_on_every_socket(alice, bob, carol, dave):
    phone, laptop = await open_socket(alice), await open_socket(alice)
    bobs, carols, daves = await open_socket(bob), await open_socket(carol), await open_socket(dave)
    sockets = {"phone": phone, "laptop": laptop, "bob": bobs, "carol": carols, "dave": daves}

    async def received() -> dict[str, list[dict]]:
        return {name: await drain(socket) for name, socket in sockets.items()}

    # when alice creates a group from her phone, naming herself and bob twice
    created = await request(phone, "group", "create",
                            {"name": "Hikers", "uids": [alice.pk, bob.pk, bob.pk, carol.pk]})
    group_id = created["result"]["group_id"]

    # then her laptop, bob and carol hear that bob and carol were invited (she created it); dave nothing
    def invited(*users) -> list[dict]:
        return [{"code": 306, "msg": None, "result": {"group_id": group_id, "chat_id": f"g{group_id}",
                                                      "event": "invited", "uids": [u.pk for u in users],
                                                      "name": "Hikers"}}]
    assert await received() == {"phone": [], "laptop": invited(bob, carol), "bob": invited(bob, carol),
                                "carol": invited(bob, carol), "dave": []}

    # when bob invites dave along with two who are already members
    reply = await request(bobs, "group", "invite", {"group_id": group_id, "uids": [alice.pk, carol.pk, dave.pk]})

    # then everyone else hears of dave alone
    assert reply["result"] == {"group_id": group_id, "uids": [dave.pk]}
    assert await received() == {"phone": invited(dave), "laptop": invited(dave), "bob": [],
                                "carol": invited(dave), "dave": invited(dave)}

    # when dave leaves and carol invites him back, with bob who never left
    assert (await request(daves, "group", "leave", {"group_id": group_id}))["code"] == 1
    await received()
    reply = await request(carols, "group", "invite", {"group_id": group_id, "uids": [bob.pk, dave.pk]})

    # then again only dave is named
    assert reply["result"] == {"group_id": group_id, "uids": [dave.pk]}
    assert await received() == {"phone": invited(dave), "laptop": invited(dave), "bob": invited(dave),
                                "carol": [], "dave": invited(dave)}
    await close_all(*sockets.values())
