"""The authorization matrix (issue 5): whoever has no right to a thing is refused and learns nothing.

For every socket action (the (class, action) table the consumer runs) and every HTTP endpoint on the
same rules (compat `user/*`, `/api/v1/groups/...`), a caller who is not a participant, not a member,
not an agent of the shop or not the owner gets -403/-404 (HTTP 403/404; compat code 0), and:
- the reply carries no secret: no message text, group or shop name, nickname of the parties, member
  list, history row or conversation row of others (the whole reply is searched);
- nothing changed: messages, memberships, roles, names, read markers, agents and sessions are as
  before, and nothing was pushed;
- the same request by the rightful caller succeeds (so the refusal is about the caller, not a
  broken request);
- errors do not tell an existing conversation from a missing one; for groups and messages
  PROTOCOL.md defines -404 (no such group/message) apart from -403 (not a member/not yours), so their
  existence is visible to anyone, and that is all that is visible (pinned below).

Found when this was written (the tests stay red until fixed): a user who left a group or was kicked
can still send typing events (302) and read receipts (301) to its members, and typing into a dissolved
group answers code 1; a removed agent's open socket keeps hearing the shop's 301/302 events; a consumer
writing into another consumer's shop chat gets code 0, where PROTOCOL.md says -403 ("not yours").

JWT attacks are covered in tests/accounts/test_tokens.py.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client, TestCase
from rest_framework.test import APIClient

from accounts.models import User
from chat import handlers, realtime, services
from chat.groups import group_create, group_dissolve, group_leave, group_message_send
from chat.models import ChatGroup, Conversation, Message, Notice, Participant
from chat.notices import notice_send
from chat.protocol import Envelope
from customer_service import services as service_services
from customer_service.models import ServiceAgent, ServiceSession
from tests.factories import caller_of, make_user, open_socket, request, synchronously, token_for

pytestmark = pytest.mark.django_db

NOBODY = 999_999  # an id no user, group, shop or message has
SECRETS = ["SECRET-private", "SECRET-group", "SECRET-after-leave", "SECRET-cs-S", "SECRET-cs-T", "SECRET-agent",
           "SECRET-notice", "SECRET-groupname", "SECRET-dissolved", "SECRET-shopS", "SECRET-shopT",
           "NICK-alice", "NICK-bob", "NICK-cora", "NICK-dan", "NICK-amy"]


@dataclass
class Cast:
    """Who is who. alice and bob chat; alice owns a group with bob (dan left it); cora asks shop S
    (owner mia, agent amy) and shop T (owner tom); eve is related to nobody."""

    users: dict[str, User]
    group_id: int
    dissolved_id: int
    shop_s: int
    shop_t: int
    private: str
    group_chat: str
    cs_s: str
    cs_t: str
    notices: str
    alice_msg: int
    cora_msg: int

    def __getattr__(self, name: str) -> User:
        try:
            return self.__dict__["users"][name]
        except KeyError:
            raise AttributeError(name) from None


@pytest.fixture
def cast(db) -> Cast:
    users = {
        name: make_user(username=f"{name}x", nickname=f"NICK-{name}")
        for name in ("alice", "bob", "dan", "cora", "amy", "mia", "tom", "eve")
    }
    alice, bob, dan, cora, amy = (users[n] for n in ("alice", "bob", "dan", "cora", "amy"))

    def send(sender, to_uid, text, chat_type=1):
        if chat_type == 2:
            return group_message_send(caller=caller_of(sender), group_id=to_uid, msg_type=1, msg=text,
                                      client_msg_id=None)
        return services.private_message_send(caller=caller_of(sender), to_uid=to_uid, chat_id=None, msg_type=1,
                                             msg=text, client_msg_id=None)

    private = send(alice, bob.pk, "SECRET-private")
    send(bob, alice.pk, "SECRET-private reply")
    group = group_create(caller=caller_of(alice), name="SECRET-groupname", uids=[bob.pk, dan.pk])
    send(alice, group.pk, "SECRET-group", chat_type=2)
    group_leave(caller=caller_of(dan), group_id=group.pk)
    send(bob, group.pk, "SECRET-after-leave", chat_type=2)
    dissolved = group_create(caller=caller_of(alice), name="SECRET-dissolved", uids=[bob.pk])
    group_dissolve(caller=caller_of(alice), group_id=dissolved.pk)

    shop_s = service_services.shop_create(name="SECRET-shopS", owner=users["mia"], offline_notice="away")
    shop_t = service_services.shop_create(name="SECRET-shopT", owner=users["tom"], offline_notice="away")
    service_services.agent_add(shop=shop_s, user=amy, status="online")
    cs_s = service_services.consumer_message_send(caller=caller_of(cora), shop_id=shop_s.pk, msg_type=1,
                                                  msg="SECRET-cs-S", client_msg_id=None)
    service_services.agent_message_send(caller=caller_of(amy), shop_id=shop_s.pk, consumer_id=cora.pk, msg_type=1,
                                        msg="SECRET-agent", client_msg_id=None)
    cs_t = service_services.consumer_message_send(caller=caller_of(cora), shop_id=shop_t.pk, msg_type=1,
                                                  msg="SECRET-cs-T", client_msg_id=None)
    notice_send(audience=Notice.Audience.USER, text="SECRET-notice", user_ids=[alice.pk], target_id=alice.pk)
    return Cast(users=users, group_id=group.pk, dissolved_id=dissolved.pk, shop_s=shop_s.pk, shop_t=shop_t.pk,
                private=private.chat_id, group_chat=f"g{group.pk}", cs_s=cs_s.chat_id, cs_t=cs_t.chat_id,
                notices=f"sys_{alice.pk}", alice_msg=private.msg_id, cora_msg=cs_s.msg_id)


def fingerprint() -> tuple:
    """Everything an unauthorized request could change."""
    return (
        list(Message.objects.order_by("pk").values_list("pk", "msg", "recalled_at")),
        list(Conversation.objects.order_by("pk").values_list("pk", "last_seq", "title")),
        list(Participant.objects.order_by("pk").values_list("pk", "role", "muted", "kicked", "hidden", "left_seq",
                                                            "last_read_seq")),
        list(ChatGroup.objects.order_by("pk").values_list("pk", "name", "dissolved_at")),
        list(ServiceAgent.objects.order_by("pk").values_list("pk", "status")),
        list(ServiceSession.objects.order_by("pk").values_list("pk", "state", "agent_id")),
    )


def leaked(reply: Any) -> list[str]:
    text = json.dumps(reply, ensure_ascii=False)
    return [secret for secret in SECRETS if secret in text]


def ask(user: User, cls: str, action: str, content: dict) -> tuple[dict, list]:
    """One socket request through the consumer's table, and what it pushed after commit."""
    with realtime.collecting() as pushes:
        with TestCase.captureOnCommitCallbacks(execute=True):
            frame, _ = handlers.run(caller_of(user, channel_name="test.socket"),
                                    Envelope(cls=cls, action=action, content=content))
    return frame, [push for push in pushes if push.text or push.join or push.leave]


# --- Socket actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """`actor` asks `cls.action` with `content(cast)`; expected code; who may do it instead."""

    actor: str
    cls: str
    action: str
    content: Callable[[Cast], dict]
    codes: tuple[int, ...]
    rightful: str | None = None
    rightful_code: int = 1


def message(chat_type: int, **fields) -> Callable[[Cast], dict]:
    """chat.sendMsg content of one chat type; callables are resolved against the cast."""
    def content(c: Cast) -> dict:
        resolved = {name: value(c) if callable(value) else value for name, value in fields.items()}
        return {"chat_type": chat_type, "msg_type": 1, "msg": "intruder", **resolved}

    return content


def fields(**values) -> Callable[[Cast], dict]:
    return lambda c: {name: value(c) if callable(value) else value for name, value in values.items()}


GROUP = lambda c: c.group_id  # noqa: E731
PRIVATE = lambda c: c.private  # noqa: E731
GROUP_CHAT = lambda c: c.group_chat  # noqa: E731
CS_S = lambda c: c.cs_s  # noqa: E731
CS_T = lambda c: c.cs_t  # noqa: E731
NOTICES = lambda c: c.notices  # noqa: E731

SOCKET_ROWS = {
    # chat.sendMsg
    "send/private chat of others by chat_id": Row("eve", "chat", "sendMsg", message(1, chat_id=PRIVATE), (-403,),
                                                  rightful="alice"),
    "send/group, not a member": Row("eve", "chat", "sendMsg", message(2, to_uid=GROUP), (-403,), rightful="bob"),
    "send/group by chat_id, not a member": Row("eve", "chat", "sendMsg", message(2, chat_id=GROUP_CHAT), (-403,),
                                               rightful="alice"),
    "send/group after leaving it": Row("dan", "chat", "sendMsg", message(2, to_uid=GROUP), (-403,), rightful="bob"),
    "send/group that was dissolved": Row("alice", "chat", "sendMsg", message(2, to_uid=lambda c: c.dissolved_id),
                                         (-404,)),
    "send/as a shop one is no agent of": Row("eve", "chat", "sendMsg",
                                             message(4, chat_id=CS_S, role_type="service"), (-403,), rightful="amy"),
    "send/as a shop, agent of another shop": Row("amy", "chat", "sendMsg",
                                                 message(4, chat_id=CS_T, role_type="service"), (-403,),
                                                 rightful="tom"),
    "send/into another consumer's shop chat": Row("eve", "chat", "sendMsg", message(4, chat_id=CS_S), (-403,),
                                                  rightful="cora"),
    "send/a system notice": Row("eve", "chat", "sendMsg", message(3, chat_id=NOTICES), (-403,)),
    # chat.setChatRead / delChat / typing
    **{
        f"{action}/{what}": Row(actor, "chat", action, fields(chat_id=chat, **extra), codes, rightful=rightful)
        for action in ("setChatRead", "delChat", "typing")
        for what, actor, chat, extra, codes, rightful in (
            ("private chat of others", "eve", PRIVATE, {}, (-404,), "bob"),
            ("group, not a member", "eve", GROUP_CHAT, {}, (-404,), "bob"),
            ("another consumer's shop chat", "eve", CS_S, {}, (-404,), "cora"),
            ("as a shop one is no agent of", "eve", CS_S, {"role_type": "service"}, (-403,), "amy"),
            ("as a shop, agent of another shop", "amy", CS_T, {"role_type": "service"}, (-403,), "tom"),
            ("someone else's notices", "eve", NOTICES, {}, (-404,), "alice"),
        )
    },
    "typing/group after leaving it": Row("dan", "chat", "typing", fields(chat_id=GROUP_CHAT), (-403, -404),
                                         rightful="bob"),
    "typing/group that was dissolved": Row("alice", "chat", "typing", fields(chat_id=lambda c: f"g{c.dissolved_id}"),
                                           (-403, -404)),
    # chat.recall
    "recall/someone else's message": Row("eve", "chat", "recall", fields(msg_id=lambda c: c.alice_msg), (-403,),
                                         rightful="alice"),
    "recall/the peer's message": Row("bob", "chat", "recall", fields(msg_id=lambda c: c.alice_msg), (-403,)),
    "recall/a consumer's message, as the shop's agent": Row("amy", "chat", "recall",
                                                            fields(msg_id=lambda c: c.cora_msg), (-403,),
                                                            rightful="cora"),
    # user.recentChat / user.chatRecord
    "recentChat/shop side, no agent": Row("eve", "user", "recentChat", fields(is_service=True), (-403,),
                                          rightful="amy", rightful_code=102),
    "recentChat/shop side of another shop": Row("amy", "user", "recentChat",
                                                fields(is_service=True, shop_id=lambda c: c.shop_t), (-403,),
                                                rightful="tom", rightful_code=102),
    "chatRecord/private chat of others": Row("eve", "user", "chatRecord", fields(chat_id=PRIVATE), (-404,),
                                             rightful="bob", rightful_code=201),
    "chatRecord/group, not a member": Row("eve", "user", "chatRecord", fields(chat_id=GROUP_CHAT), (-404,),
                                          rightful="bob", rightful_code=201),
    "chatRecord/group by to_uid, not a member": Row("eve", "user", "chatRecord",
                                                    fields(to_uid=GROUP, chat_type=2), (-404,),
                                                    rightful="bob", rightful_code=201),
    "chatRecord/another consumer's shop chat": Row("eve", "user", "chatRecord", fields(chat_id=CS_S), (-404,),
                                                   rightful="cora", rightful_code=201),
    "chatRecord/shop side, no agent": Row("eve", "user", "chatRecord", fields(chat_id=CS_S, role_type="service"),
                                          (-403,), rightful="amy", rightful_code=201),
    "chatRecord/shop side of another shop": Row("amy", "user", "chatRecord",
                                                fields(chat_id=CS_T, role_type="service"), (-403,),
                                                rightful="tom", rightful_code=201),
    "chatRecord/someone else's notices": Row("eve", "user", "chatRecord", fields(chat_id=NOTICES), (-404,),
                                             rightful="alice", rightful_code=201),
    # group.*
    "group.invite/not a member": Row("eve", "group", "invite", fields(group_id=GROUP, uids=lambda c: [c.eve.pk]),
                                     (-403,)),
    "group.invite/after leaving": Row("dan", "group", "invite", fields(group_id=GROUP, uids=lambda c: [c.dan.pk]),
                                      (-403,)),
    "group.leave/not a member": Row("eve", "group", "leave", fields(group_id=GROUP), (-403,), rightful="bob"),
    "group.kick/not a member": Row("eve", "group", "kick", fields(group_id=GROUP, uid=lambda c: c.bob.pk), (-403,),
                                   rightful="alice"),
    "group.kick/a plain member": Row("bob", "group", "kick", fields(group_id=GROUP, uid=lambda c: c.alice.pk),
                                     (-403,)),
    "group.members/not a member": Row("eve", "group", "members", fields(group_id=GROUP), (-403,),
                                      rightful="bob", rightful_code=101),
    "group.members/after leaving": Row("dan", "group", "members", fields(group_id=GROUP), (-403,),
                                       rightful="bob", rightful_code=101),
    "group.rename/not a member": Row("eve", "group", "rename", fields(group_id=GROUP, name="pwned"), (-403,),
                                     rightful="alice"),
    "group.rename/a plain member": Row("bob", "group", "rename", fields(group_id=GROUP, name="pwned"), (-403,),
                                       rightful="alice"),
    "group.setRole/not a member": Row("eve", "group", "setRole",
                                      fields(group_id=GROUP, uid=lambda c: c.bob.pk, role="admin"), (-403,),
                                      rightful="alice"),
    "group.setRole/a plain member promotes themself": Row("bob", "group", "setRole",
                                                          fields(group_id=GROUP, uid=lambda c: c.bob.pk,
                                                                 role="admin"), (-403,), rightful="alice"),
    "group.mute/not a member": Row("eve", "group", "mute", fields(group_id=GROUP, uid=lambda c: c.bob.pk),
                                   (-403,), rightful="alice"),
    "group.mute/a plain member": Row("bob", "group", "mute", fields(group_id=GROUP, uid=lambda c: c.alice.pk),
                                     (-403,)),
    "group.dissolve/not a member": Row("eve", "group", "dissolve", fields(group_id=GROUP), (-403,),
                                       rightful="alice"),
    "group.dissolve/a plain member": Row("bob", "group", "dissolve", fields(group_id=GROUP), (-403,),
                                         rightful="alice"),
    # service.*
    "service.setStatus/no agent": Row("eve", "service", "setStatus", fields(status="online"), (-403,),
                                      rightful="amy"),
    "service.setStatus/another shop": Row("amy", "service", "setStatus",
                                          fields(status="offline", shop_id=lambda c: c.shop_t), (-403,)),
    "service.transfer/no agent": Row("eve", "service", "transfer", fields(chat_id=CS_S, to_uid=lambda c: c.eve.pk),
                                     (-403,)),
    "service.transfer/another shop's session": Row("amy", "service", "transfer",
                                                   fields(chat_id=CS_T, to_uid=lambda c: c.amy.pk), (-403,)),
    "service.close/no agent": Row("eve", "service", "close", fields(chat_id=CS_S), (-403,), rightful="amy"),
    "service.close/another shop's session": Row("amy", "service", "close", fields(chat_id=CS_T), (-403,),
                                                rightful="tom"),
    "service.close/the consumer closes their own session": Row("cora", "service", "close", fields(chat_id=CS_S),
                                                               (-403,), rightful="amy"),
}


@pytest.mark.parametrize("row", list(SOCKET_ROWS.values()), ids=list(SOCKET_ROWS))
def test_a_socket_action_on_what_is_not_yours_is_refused_and_reveals_and_changes_nothing(cast, row):
    # given
    actor = getattr(cast, row.actor)
    content = row.content(cast)
    before = fingerprint()

    # when
    frame, pushed = ask(actor, row.cls, row.action, content)

    # then
    assert frame["code"] in row.codes, frame
    assert frame["result"] is None, frame
    assert leaked(frame) == [], frame
    assert pushed == []
    assert fingerprint() == before

    # and the same request from the one who may do it is not refused
    if row.rightful is not None:
        allowed, _ = ask(getattr(cast, row.rightful), row.cls, row.action, content)
        assert allowed["code"] == row.rightful_code, allowed


def test_a_member_who_left_may_mark_what_they_saw_read_but_the_group_is_not_told(cast):
    # dan's read marker is his own (the history he saw stays his); the members he left hear nothing
    frame, pushed = ask(cast.dan, "chat", "setChatRead", {"chat_id": cast.group_chat})

    assert frame["code"] == 1
    assert [(push.group, push.text) for push in pushed] == []


# Requests that succeed for anyone, but must show the caller nothing of others.

NAMES = {"NICK-alice", "NICK-bob", "NICK-cora", "NICK-dan", "NICK-amy"}
DAN_SAW = {"SECRET-group", "NICK-alice"}  # what was said in the group before dan left
AMY_SERVES = {"SECRET-cs-S", "SECRET-agent", "SECRET-shopS", "NICK-cora", "NICK-amy"}

OWN_VIEW_ROWS = {
    # (actor, cls, action, content, the secrets this caller may see)
    "sync/cursors on others' chats and since 0": (
        "eve", "chat", "sync",
        lambda c: {"chats": {c.private: 0, c.group_chat: 0, c.cs_s: 0, c.cs_t: 0, c.notices: 0}, "since": 0}, set()),
    "sync/a member who left sees nothing after leaving": (
        "dan", "chat", "sync", lambda c: {"chats": {c.group_chat: 0}, "since": 0}, DAN_SAW),
    "sync/an agent sees nothing of another shop": (
        "amy", "chat", "sync", lambda c: {"chats": {c.cs_t: 0}, "since": 0}, AMY_SERVES),
    "recentChat/own list only": ("eve", "user", "recentChat", lambda c: {}, set()),
    "recentChat/an agent's shop side shows only their shops": (
        "amy", "user", "recentChat", lambda c: {"is_service": True}, AMY_SERVES),
    "chatRecord/a member who left sees nothing after leaving": (
        "dan", "user", "chatRecord", lambda c: {"chat_id": c.group_chat}, DAN_SAW),
    "chatRecord/own empty chat with a shop": (
        "eve", "user", "chatRecord", lambda c: {"to_uid": c.shop_s, "chat_type": 4}, set()),
    "chatRecord/own empty chat with a user": (
        "eve", "user", "chatRecord", lambda c: {"to_uid": c.alice.pk, "chat_type": 1}, set()),
    # A user with no chats is suggested a few other users (PROTOCOL.md 6, user/index): names are
    # public, conversations are not.
    "friendList/no partner's conversations": ("eve", "user", "friendList", lambda c: {}, NAMES),
}


@pytest.mark.parametrize("row", list(OWN_VIEW_ROWS.values()), ids=list(OWN_VIEW_ROWS))
def test_reads_that_anyone_may_make_show_nothing_of_others(cast, row):
    actor_name, cls, action, content, may_see = row

    frame, pushed = ask(getattr(cast, actor_name), cls, action, content(cast))

    assert frame["code"] in (1, 100, 102, 201), frame
    assert set(leaked(frame)) <= may_see, frame
    assert pushed == []


# --- Existence: what an error tells about things one cannot see ------------------------------------

ENUMERATION_ROWS = {
    # (actor, cls, action, content for a thing that exists but is not the caller's, for one that does not)
    "a private chat": ("eve", "chat", "setChatRead", lambda c: {"chat_id": c.private},
                       lambda c: {"chat_id": f"{NOBODY - 1}_{NOBODY}"}),
    "a group chat (read marker)": ("eve", "chat", "setChatRead", lambda c: {"chat_id": c.group_chat},
                                   lambda c: {"chat_id": f"g{NOBODY}"}),
    "a group chat (history)": ("eve", "user", "chatRecord", lambda c: {"chat_id": c.group_chat},
                               lambda c: {"chat_id": f"g{NOBODY}"}),
    "a private chat (history)": ("eve", "user", "chatRecord", lambda c: {"chat_id": c.private},
                                 lambda c: {"chat_id": f"{NOBODY - 1}_{NOBODY}"}),
    "a customer-service chat": ("eve", "chat", "delChat", lambda c: {"chat_id": c.cs_s},
                                lambda c: {"chat_id": f"{c.shop_s}____{NOBODY}"}),
    "a shop (shop side)": ("eve", "user", "chatRecord", lambda c: {"chat_id": c.cs_s, "role_type": "service"},
                           lambda c: {"chat_id": f"{NOBODY}____{c.cora.pk}", "role_type": "service"}),
    "a customer-service session (close)": ("eve", "service", "close", lambda c: {"chat_id": c.cs_s},
                                           lambda c: {"chat_id": f"{NOBODY}____{c.cora.pk}"}),
    "someone's notices": ("eve", "chat", "typing", lambda c: {"chat_id": c.notices},
                          lambda c: {"chat_id": f"sys_{NOBODY}"}),
}


@pytest.mark.parametrize("row", list(ENUMERATION_ROWS.values()), ids=list(ENUMERATION_ROWS))
def test_an_existing_thing_one_may_not_see_answers_exactly_like_a_missing_one(cast, row):
    actor_name, cls, action, existing, missing = row
    actor = getattr(cast, actor_name)

    hidden, _ = ask(actor, cls, action, existing(cast))
    absent, _ = ask(actor, cls, action, missing(cast))

    assert hidden["code"] in (-403, -404), hidden
    assert hidden == absent


GROUP_AND_MESSAGE_ROWS = {
    # PROTOCOL.md: -404 "no such group/message", -403 "not a member"/"only the sender". Existence of
    # a group id or a message id is therefore visible to anyone; nothing else is.
    "group.members": ("group", "members", lambda gid: {"group_id": gid}),
    "group.invite": ("group", "invite", lambda gid: {"group_id": gid, "uids": [NOBODY]}),
    "group.rename": ("group", "rename", lambda gid: {"group_id": gid, "name": "x"}),
    "group.leave": ("group", "leave", lambda gid: {"group_id": gid}),
    "chat.sendMsg to a group": ("chat", "sendMsg",
                                lambda gid: {"to_uid": gid, "chat_type": 2, "msg_type": 1, "msg": "x"}),
}


@pytest.mark.parametrize("row", list(GROUP_AND_MESSAGE_ROWS.values()), ids=list(GROUP_AND_MESSAGE_ROWS))
def test_a_group_one_is_not_in_is_told_apart_from_a_missing_one_only_by_the_documented_code(cast, row):
    cls, action, content = row

    hidden, _ = ask(cast.eve, cls, action, content(cast.group_id))
    dissolved, _ = ask(cast.eve, cls, action, content(cast.dissolved_id))
    absent, _ = ask(cast.eve, cls, action, content(NOBODY))

    assert hidden == {"code": -403, "msg": "not a member of this group", "result": None}
    assert dissolved == absent == {"code": -404, "msg": "group_id: no such group", "result": None}


def test_a_message_one_did_not_send_is_told_apart_from_a_missing_one_only_by_the_documented_code(cast):
    hidden, _ = ask(cast.eve, "chat", "recall", {"msg_id": cast.alice_msg})
    absent, _ = ask(cast.eve, "chat", "recall", {"msg_id": NOBODY})

    assert hidden == {"code": -403, "msg": "only the sender may recall a message", "result": None}
    assert absent == {"code": -404, "msg": "msg_id: no such message", "result": None}


# --- HTTP: compat user/* ----------------------------------------------------------------------------

COMPAT_ROWS = {
    "getChatRecord/private chat of others": ("eve", "/user/getChatRecord", lambda c: {"chat_id": c.private},
                                             "bob"),
    "getChatRecord/group, not a member": ("eve", "/user/getChatRecord", lambda c: {"chat_id": c.group_chat},
                                          "bob"),
    "getChatRecord/group by to_uid, not a member": ("eve", "/user/getChatRecord",
                                                    lambda c: {"to_uid": c.group_id, "chat_type": 2}, "bob"),
    "getChatRecord/another consumer's shop chat": ("eve", "/user/getChatRecord", lambda c: {"chat_id": c.cs_s},
                                                   "cora"),
    "getChatRecord/shop side, no agent": ("eve", "/user/getChatRecord",
                                          lambda c: {"chat_id": c.cs_s, "role_type": 1}, "amy"),
    "getChatRecord/shop side of another shop": ("amy", "/user/getChatRecord",
                                                lambda c: {"chat_id": c.cs_t, "role_type": "service"}, "tom"),
    "getChatRecord/someone else's notices": ("eve", "/user/getChatRecord", lambda c: {"chat_id": c.notices},
                                             "alice"),
    "chatRecently/shop side, no agent": ("eve", "/user/chatRecently", lambda c: {"is_service": True}, "amy"),
    "chatRecently/shop side of another shop": ("amy", "/user/chatRecently",
                                               lambda c: {"is_service": True, "shop_id": c.shop_t}, "tom"),
}


def compat_post(user: User, path: str, body: dict) -> dict:
    response = Client().post(path, data=json.dumps(body), content_type="application/json",
                             headers={"authorizations": f"bear {token_for(user)}"})
    assert response.status_code == 200, response.content[:300]
    return response.json()


@pytest.mark.parametrize("row", list(COMPAT_ROWS.values()), ids=list(COMPAT_ROWS))
def test_a_compat_endpoint_refuses_with_code_0_and_reveals_nothing(cast, row):
    actor_name, path, body, rightful = row
    before = fingerprint()

    reply = compat_post(getattr(cast, actor_name), path, body(cast))

    assert reply["code"] == 0 and reply["result"] is None, reply
    assert leaked(reply) == [], reply
    assert fingerprint() == before
    assert compat_post(getattr(cast, rightful), path, body(cast))["code"] == 1


def test_compat_chat_recently_lists_only_the_callers_own_conversations(cast):
    reply = compat_post(cast.eve, "/user/chatRecently", {})

    assert reply["code"] == 1
    assert {row["chat_id"] for row in reply["result"]["rows"]} <= {f"sys_{cast.eve.pk}", "sys_0"}
    assert leaked(reply) == []


# --- HTTP: /api/v1/groups/ ----------------------------------------------------------------------------

REST_ROWS = {
    # (actor, method, path, body, HTTP status, rightful actor)
    "GET group/not a member": ("eve", "get", "/api/v1/groups/{g}/", None, 403, "bob"),
    "GET members/not a member": ("eve", "get", "/api/v1/groups/{g}/members/", None, 403, "bob"),
    "GET members/after leaving": ("dan", "get", "/api/v1/groups/{g}/members/", None, 403, "bob"),
    "GET group/dissolved": ("alice", "get", "/api/v1/groups/{d}/", None, 404, None),
    "PATCH rename/not a member": ("eve", "patch", "/api/v1/groups/{g}/", {"name": "pwned"}, 403, "alice"),
    "PATCH rename/a plain member": ("bob", "patch", "/api/v1/groups/{g}/", {"name": "pwned"}, 403, "alice"),
    "DELETE dissolve/not a member": ("eve", "delete", "/api/v1/groups/{g}/", None, 403, "alice"),
    "DELETE dissolve/a plain member": ("bob", "delete", "/api/v1/groups/{g}/", None, 403, "alice"),
    "POST invite/not a member": ("eve", "post", "/api/v1/groups/{g}/members/", {"uids": ["{eve}"]}, 403, None),
    "POST invite/after leaving": ("dan", "post", "/api/v1/groups/{g}/members/", {"uids": ["{dan}"]}, 403, None),
    "DELETE kick/not a member": ("eve", "delete", "/api/v1/groups/{g}/members/{bob}/", None, 403, "alice"),
    "DELETE kick/a plain member kicks the owner": ("bob", "delete", "/api/v1/groups/{g}/members/{alice}/", None,
                                                   403, None),
    "DELETE leave/not a member": ("eve", "delete", "/api/v1/groups/{g}/members/{eve}/", None, 403, None),
    "PATCH role/not a member": ("eve", "patch", "/api/v1/groups/{g}/members/{bob}/", {"role": "admin"}, 403,
                                "alice"),
    "PATCH role/a plain member promotes themself": ("bob", "patch", "/api/v1/groups/{g}/members/{bob}/",
                                                    {"role": "admin"}, 403, "alice"),
    "PATCH mute/a plain member mutes the owner": ("bob", "patch", "/api/v1/groups/{g}/members/{alice}/",
                                                  {"muted": True}, 403, None),
}


def rest(user: User, method: str, path: str, body: dict | None):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


def fill(template: Any, cast: Cast) -> Any:
    names = {"g": cast.group_id, "d": cast.dissolved_id, **{name: user.pk for name, user in cast.users.items()}}
    if isinstance(template, str):
        filled = template.format(**names)
        return int(filled) if template.startswith("{") and filled.isdigit() else filled
    if isinstance(template, dict):
        return {key: fill(value, cast) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, cast) for value in template]
    return template


@pytest.mark.parametrize("row", list(REST_ROWS.values()), ids=list(REST_ROWS))
def test_a_group_api_call_on_a_group_that_is_not_yours_is_refused_and_reveals_nothing(cast, row):
    actor_name, method, path, body, status, rightful = row
    path, body = fill(path, cast), fill(body, cast)
    before = fingerprint()

    response = rest(getattr(cast, actor_name), method, path, body)

    assert response.status_code == status, response.content[:300]
    reply = response.json()
    assert reply["code"] == {403: -403, 404: -404}[status] and reply["result"] is None, reply
    assert leaked(reply) == [], reply
    assert fingerprint() == before
    if rightful is not None:
        assert rest(getattr(cast, rightful), method, path, body).status_code == 200


def test_the_group_list_shows_only_the_callers_groups(cast):
    mine = rest(cast.eve, "get", "/api/v1/groups/", None).json()
    left = rest(cast.dan, "get", "/api/v1/groups/", None).json()

    assert mine == {"code": 1, "msg": None, "result": []}
    assert left == {"code": 1, "msg": None, "result": []}


# --- Live sockets: a right taken away stops the pushes it gave --------------------------------------


PUSH_CODES = {200, 301, 302, 303, 304, 305, 306, 307}


async def reply_to(socket, cls: str, action: str, content: dict) -> dict:
    """The reply to one request, pushes that arrive before it skipped."""
    frame = await request(socket, cls, action, content)
    while frame["code"] in PUSH_CODES:
        frame = await socket.receive_json_from()
    return frame


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_an_agent_removed_from_a_shop_hears_nothing_more_of_it_on_an_open_socket():
    # given amy is an agent of the shop, connected, and serving cora
    amy, cora, mia = await database_sync_to_async(
        lambda: [make_user(username=name, nickname=f"NICK-{name}") for name in ("amyx", "corax", "miax")])()
    shop = await database_sync_to_async(
        lambda: service_services.shop_create(name="SECRET-shopS", owner=mia, offline_notice="away"))()
    await database_sync_to_async(lambda: service_services.agent_add(shop=shop, user=amy, status="online"))()
    amys, coras = await open_socket(amy), await open_socket(cora)
    chat_id = f"{shop.pk}____{cora.pk}"
    await reply_to(coras, "chat", "sendMsg", {"to_uid": shop.pk, "chat_type": 4, "msg_type": 1, "msg": "hello"})
    served = [await amys.receive_json_from() for _ in range(2)]
    assert sorted(frame["code"] for frame in served) == [200, 305]

    # when the merchant removes her (the admin calls this service when it deletes the agent row)
    await database_sync_to_async(
        lambda: service_services.agent_remove(agent=ServiceAgent.objects.get(shop=shop, user=amy)))()

    # then what happens in the shop's conversations no longer reaches her open socket
    assert (await reply_to(coras, "chat", "typing", {"chat_id": chat_id}))["code"] == 1
    assert (await reply_to(coras, "chat", "setChatRead", {"chat_id": chat_id}))["code"] == 1
    sent = await reply_to(coras, "chat", "sendMsg", {"chat_id": chat_id, "chat_type": 4, "msg_type": 1,
                                                    "msg": "SECRET-cs-S"})
    assert sent["code"] == 1
    heard = []
    while not await amys.receive_nothing(timeout=0.3):
        heard.append(await amys.receive_json_from())
    assert heard == []
    await amys.disconnect()
    await coras.disconnect()
