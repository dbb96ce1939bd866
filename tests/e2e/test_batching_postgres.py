"""chat.sendmsg batches on PostgreSQL: the one-statement store (chat/messages.py), and a burst.

The SQLite tests (tests/chat/test_batching.py) never run that statement. Here the same promises
are checked inside a real site: the `on_site_*` functions below run in `manage.py shell` against
the site's PostgreSQL and print what they observed as JSON; the tests assert on it. Then many
sockets on two daphne processes send as fast as they can, and the stored rows are inspected.
"""

import asyncio
import json
import secrets
import time

import psycopg
import pytest

from tests.e2e.harness import Client, Site, private_chat_id, run, send_msg_frame

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

NO_SUCH_USER = 987_654_321


@pytest.fixture(scope="module")
def site(scale_out_site: Site) -> Site:
    return scale_out_site


# --- Run inside the site (manage.py shell): a batch, and what it left in the database -------------


def _people(*names: str) -> dict:
    from tests.factories import make_user

    tag = secrets.token_hex(4)
    return {name: make_user(username=f"{name}{tag}", nickname=name.capitalize()) for name in names}


_one_by_one: list[int] = []  # msg_ids stored one by one (through `message_store`), not in the batch


def _batch(*requests: tuple) -> tuple[list[dict], list[list]]:
    """requests: (user, content, req_id, channel); the frames as JSON, the pushes as
    [group, code, exclude, result]."""
    from chat import handlers, messages
    from chat.protocol import Envelope, dumps
    from tests.factories import caller_of, decode_pushes

    # `message_store` (one message: the kinds' one-by-one paths) calls the module's `messages_store`;
    # the batch holds its own reference, so only one-by-one stores are seen here.
    real_store = messages.messages_store

    def watched_store(drafts, **options):
        stored = real_store(drafts, **options)
        _one_by_one.extend(one.msg_id for one in stored if one is not None)
        return stored

    messages.messages_store = watched_store
    try:
        frames, pushes = handlers.run_batch([
            (caller_of(user, channel_name=channel), Envelope(cls="chat", action="sendMsg", content=content,
                                                             req_id=req_id))
            for user, content, req_id, channel in requests
        ])
    finally:
        messages.messages_store = real_store
    return json.loads(dumps(frames)), [[s.group, s.code, s.exclude, s.result] for s in decode_pushes(pushes)]


def _opened(a, b):
    from chat import services

    return services.conversation_open_private(user=a, peer=b)


def _facts(people: dict, conversations: dict, frames: list, pushes: list, **extra) -> dict:
    """Everything a test may assert on: ids, replies, pushes, and each conversation's rows."""
    from chat.models import Conversation, Message, Participant

    chats = {}
    for label, conversation in conversations.items():
        conversation = Conversation.objects.get(pk=conversation.pk)
        names = {person.pk: name for name, person in people.items()}
        chats[label] = {
            "chat_id": conversation.chat_id,
            "messages": [list(row) for row in Message.objects.filter(conversation=conversation).order_by("seq")
                         .values_list("seq", "sender_id", "msg", "pk")],
            "summary": [conversation.last_seq, conversation.last_msg, conversation.last_msg_type,
                        conversation.last_uid],
            "rows": {names.get(user_id, str(user_id)): [read, hidden, left]
                     for user_id, read, hidden, left in Participant.objects.filter(conversation=conversation)
                     .values_list("user_id", "last_read_seq", "hidden", "left_seq")},
        }
    one_by_one = sorted(_one_by_one)
    _one_by_one.clear()
    return {"uid": {name: person.pk for name, person in people.items()}, "frames": frames, "pushes": pushes,
            "chats": chats, "one_by_one": one_by_one, **extra}


def on_site_order() -> dict:
    from tests.factories import send_content

    people = _people("alice", "bob", "carol")
    alice, bob, carol = people.values()
    ab, ac = _opened(alice, bob), _opened(alice, carol)
    frames, pushes = _batch(
        (alice, send_content(bob.pk, "a1"), 1, None),
        (bob, send_content(alice.pk, "b1"), 2, None),
        (alice, send_content(carol.pk, "c1"), 3, None),
        (alice, send_content(bob.pk, "a2", chat_id=ab.chat_id), 4, None),
        (bob, send_content(alice.pk, "https://cdn.example.com/b2.png", msg_type=2), 5, None),
        (alice, send_content(carol.pk, "long " + "x" * 300), 6, None),
    )
    return _facts(people, {"ab": ab, "ac": ac}, frames, pushes)


def on_site_hidden() -> dict:
    from chat.models import Participant
    from tests.factories import send_content

    people = _people("alice", "bob", "carol")
    alice, bob, carol = people.values()
    ab, ac = _opened(alice, bob), _opened(alice, carol)
    Participant.objects.filter(conversation=ab).update(hidden=True)
    Participant.objects.filter(conversation=ac, user=carol).update(hidden=True, left_seq=0, last_read_seq=0)
    frames, pushes = _batch((alice, send_content(bob.pk, "back?"), 1, None),
                            (alice, send_content(carol.pk, "hi"), 2, None))
    return _facts(people, {"ab": ab, "ac": ac}, frames, pushes)


def on_site_new_and_unknown_peers() -> dict:
    from chat.models import Conversation
    from tests.factories import send_content

    people = _people("alice", "bob", "dave")
    alice, bob, dave = people.values()
    ab = _opened(alice, bob)
    no_msg = send_content(bob.pk)
    del no_msg["msg"]
    frames, pushes = _batch(
        (alice, send_content(bob.pk, "to bob"), "ok-1", None),
        (alice, send_content(dave.pk, "hello dave"), "new", None),
        (alice, send_content(NO_SUCH_USER, "nobody"), "unknown", None),
        (alice, no_msg, "missing", None),
        (alice, send_content(alice.pk, "to myself"), "self", None),
        (bob, send_content(alice.pk, "to alice"), "ok-2", None),
    )
    ad = Conversation.objects.get(chat_id=frames[1]["result"]["chat_id"])
    unknown_opened = Conversation.objects.filter(chat_id__contains=str(NO_SUCH_USER)).exists()
    return _facts(people, {"ab": ab, "ad": ad}, frames, pushes, unknown_opened=unknown_opened)


def on_site_other_chat_types() -> dict:
    from chat import groups
    from customer_service import services as service_services
    from tests.factories import caller_of, send_content

    people = _people("alice", "bob", "carol", "merchant")
    alice, bob, carol, merchant = people.values()
    _opened(alice, bob)
    group = groups.group_create(caller=caller_of(alice), name="Team", uids=[bob.pk, carol.pk])
    shop = service_services.shop_create(name="Tea House", owner=merchant)
    frames, pushes = _batch(
        (alice, send_content(bob.pk, "private"), 1, None),
        (bob, {**send_content(group.pk, "to the team"), "chat_type": 2, "chat_id": f"g{group.pk}"}, 2, "bob.phone"),
        (carol, {**send_content(shop.pk, "is the shop open?"), "chat_type": 4}, 3, None),
        (carol, {**send_content(alice.pk, "a notice"), "chat_type": 3}, 4, None),
    )
    from chat.models import Conversation

    return _facts(people, {"team": Conversation.objects.get(chat_id=f"g{group.pk}"),
                           "shop": Conversation.objects.get(chat_id=f"{shop.pk}____{carol.pk}")},
                  frames, pushes, group_id=group.pk, shop_id=shop.pk)


def on_site_service_sessions() -> dict:
    """Two consumers in open sessions with amy, and amy answering one of them, in one batch; the
    other consumer's session closes right after the batch read it (another process's close)."""
    from chat.presence import presence
    from customer_service import selectors
    from customer_service import services as service_services
    from customer_service.models import ServiceAgent, ServiceSession
    from tests.factories import send_content

    people = _people("amy", "cora", "dan", "merchant")
    amy, cora, dan, merchant = people.values()
    shop = service_services.shop_create(name="Tea House", owner=merchant)
    service_services.agent_add(shop=shop, user=amy, status=ServiceAgent.Status.ONLINE)
    presence().connected(amy.pk, "amy.laptop")
    to_shop = {"chat_type": 4, "to_uid": shop.pk}
    _batch((cora, {**send_content(shop.pk, "hello"), **to_shop}, 0, None),
           (dan, {**send_content(shop.pk, "hello"), **to_shop}, 0, None))
    _one_by_one.clear()
    for person in (cora, dan):  # the next batch reads them (as a process that never saw them would)
        selectors.known_sessions.forget(f"{shop.pk}____{person.pk}")
    real = selectors.live_sessions_of

    def read_then_close(chat_ids):
        found = real(chat_ids)
        ServiceSession.objects.filter(consumer=dan).update(state=ServiceSession.State.CLOSED)
        return found

    selectors.live_sessions_of = read_then_close
    try:
        frames, pushes = _batch(
            (cora, {**send_content(shop.pk, "from cora"), **to_shop}, 1, None),
            (amy, {**send_content(cora.pk, "answer", chat_id=f"{shop.pk}____{cora.pk}"), **to_shop,
                   "to_uid": cora.pk, "shop_id": shop.pk, "role_type": "service"}, 2, None),
            (dan, {**send_content(shop.pk, "from dan"), **to_shop}, 3, None),
        )
    finally:
        selectors.live_sessions_of = real
        presence().disconnected(amy.pk, "amy.laptop")
    sessions = {name: [[s.state, s.agent_id, s.first_seq, s.first_response_at is not None]
                       for s in ServiceSession.objects.filter(consumer=person).order_by("pk")]
                for name, person in (("cora", cora), ("dan", dan))}
    from chat.models import Conversation

    return _facts(people, {"cora": Conversation.objects.get(chat_id=f"{shop.pk}____{cora.pk}"),
                           "dan": Conversation.objects.get(chat_id=f"{shop.pk}____{dan.pk}")},
                  frames, pushes, sessions=sessions)


def on_site_first_service_messages() -> dict:
    """Three consumers' first messages to a shop with a greeting (one of them writes twice), amy and
    ben online, in one batch: sessions opened together, the messages in the batch's statement."""
    from chat.models import Conversation
    from chat.presence import presence
    from customer_service import services as service_services
    from customer_service.models import Assignment, ServiceAgent, ServiceSession
    from tests.factories import send_content

    people = _people("amy", "ben", "cora", "dan", "eve", "merchant")
    amy, ben, cora, dan, eve, merchant = people.values()
    shop = service_services.shop_create(name="Tea House", owner=merchant)
    service_services.shop_update(shop=shop, greeting="Welcome!")
    for agent in (amy, ben):
        service_services.agent_add(shop=shop, user=agent, status=ServiceAgent.Status.ONLINE)
        presence().connected(agent.pk, f"{agent.pk}.laptop")
    to_shop = {"chat_type": 4, "to_uid": shop.pk}
    try:
        frames, pushes = _batch((cora, {**send_content(shop.pk, "one"), **to_shop}, 1, None),
                                (dan, {**send_content(shop.pk, "hello"), **to_shop}, 2, None),
                                (cora, {**send_content(shop.pk, "two"), **to_shop}, 3, None),
                                (eve, {**send_content(shop.pk, "hi"), **to_shop}, 4, None))
    finally:
        for agent in (amy, ben):
            presence().disconnected(agent.pk, f"{agent.pk}.laptop")
    names = {person.pk: name for name, person in people.items()}
    sessions = {names[consumer]: [state, names[agent], first_seq] for consumer, state, agent, first_seq in
                ServiceSession.objects.filter(shop=shop).values_list("consumer_id", "state", "agent_id", "first_seq")}
    reasons = sorted(Assignment.objects.filter(session__shop=shop).values_list("reason", flat=True))
    return _facts(people, {name: Conversation.objects.get(chat_id=f"{shop.pk}____{people[name].pk}")
                           for name in ("cora", "dan", "eve")}, frames, pushes, sessions=sessions, reasons=reasons)


def on_site_known_sessions() -> dict:
    """cora writes to a shop in batch after batch; between them another process (the ORM here,
    forgetting nothing in this one) masks the shop's contacts, sets amy offline, lets the session
    go idle. Which batches read the live sessions, which messages went alone, and what was stored."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from chat.presence import presence
    from customer_service import selectors
    from customer_service import services as service_services
    from customer_service.models import ServiceAgent, ServiceSession, Shop
    from tests.factories import send_content

    people = _people("amy", "ben", "cora", "merchant")
    amy, ben, cora, merchant = people.values()
    shop = service_services.shop_create(name="Tea House", owner=merchant)
    service_services.agent_add(shop=shop, user=amy, status=ServiceAgent.Status.ONLINE)
    service_services.agent_add(shop=shop, user=ben, status=ServiceAgent.Status.ONLINE)
    presence().connected(amy.pk, "amy.laptop")
    to_shop = {"chat_type": 4, "to_uid": shop.pk}
    real = selectors.live_sessions_of
    reads: list[int] = []

    def counted(chat_ids):
        reads[-1] += 1
        return real(chat_ids)

    def step(text: str) -> tuple[dict, list]:
        reads.append(0)
        (frame,), pushes = _batch((cora, {**send_content(shop.pk, text), **to_shop}, len(reads), None))
        return frame, [group for group, *_ in pushes]

    selectors.live_sessions_of = counted
    steps = {}
    try:
        steps["first"] = step("hello")  # opens the session (with amy: ben has no socket yet)
        presence().connected(ben.pk, "ben.laptop")
        steps["read"] = step("one")
        steps["known"] = step("two")
        Shop.objects.filter(pk=shop.pk).update(contact_guard=Shop.ContactGuard.MASK)
        steps["guard changed"] = step("call me on 13800138000")
        steps["read again"] = step("four")
        ServiceAgent.objects.filter(shop=shop, user=amy).update(status=ServiceAgent.Status.OFFLINE)
        steps["agent offline"] = step("five")
        ServiceSession.objects.filter(consumer=cora, state=ServiceSession.State.OPEN).update(
            last_activity_at=timezone.now() - timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS + 60))
        steps["idle"] = step("six")
    finally:
        selectors.live_sessions_of = real
        presence().disconnected(amy.pk, "amy.laptop")
        presence().disconnected(ben.pk, "ben.laptop")
    one_by_one = set(_one_by_one)
    _one_by_one.clear()
    from chat.models import Message

    stored = dict(Message.objects.filter(pk__in=[frame["result"]["msg_id"] for frame, _ in steps.values()])
                  .values_list("pk", "msg"))
    return {"uid": {name: person.pk for name, person in people.items()},
            "steps": {name: {"reads": count, "alone": frame["result"]["msg_id"] in one_by_one,
                             "stored": stored[frame["result"]["msg_id"]], "pushed_to": groups}
                      for (name, (frame, groups)), count in zip(steps.items(), reads)},
            "sessions": [[s.state, s.agent_id] for s in ServiceSession.objects.filter(consumer=cora).order_by("pk")]}


def on_site_resends() -> dict:
    from tests.factories import send_content

    people = _people("alice", "bob")
    alice, bob = people.values()
    ab = _opened(alice, bob)
    (first,), _ = _batch((alice, send_content(bob.pk, "first", client_msg_id="c-1"), 0, None))
    frames, pushes = _batch(
        (alice, send_content(bob.pk, "second", client_msg_id="c-2"), 1, None),
        (alice, send_content(bob.pk, "first", client_msg_id="c-1"), 2, None),
        (bob, send_content(alice.pk, "reply", client_msg_id="c-1"), 3, None),  # bob's own c-1
        (alice, send_content(bob.pk, "tap", client_msg_id="double"), 4, None),
        (alice, send_content(bob.pk, "tap", client_msg_id="double"), 5, None),
        (alice, send_content(bob.pk, "third"), 6, None),
    )
    return _facts(people, {"ab": ab}, frames, pushes, first=first)


def on_site_pushes() -> dict:
    from tests.factories import send_content

    people = _people("alice", "bob")
    alice, bob = people.values()
    ab = _opened(alice, bob)
    frames, pushes = _batch((alice, send_content(bob.pk, "hi bob", client_msg_id="a-1"), 1, "alice.phone"),
                            (bob, send_content(alice.pk, "hi alice"), 2, "bob.laptop"))
    return _facts(people, {"ab": ab}, frames, pushes)


def observe_on_site() -> dict:
    """Every on_site_* scenario, each its own outcome: its facts, or the traceback that stopped it."""
    import traceback

    from django.db import connection

    assert connection.vendor == "postgresql", connection.vendor
    observed = {}
    for name, scenario in globals().items():
        if name.startswith("on_site_"):
            try:
                observed[name] = scenario()
            except Exception:  # noqa: BLE001 - reported to the test that asked for this scenario
                observed[name] = {"error": traceback.format_exc()}
    return observed


@pytest.fixture(scope="module")
def observed(site: Site):
    """`observed("order")` -> the facts of on_site_order, run in the site against PostgreSQL."""
    output = site.manage("shell", "-c", "import json\n"
                                        "from tests.e2e.test_batching_postgres import observe_on_site\n"
                                        "print(json.dumps(observe_on_site()))\n")
    everything = json.loads(output.strip().splitlines()[-1])

    def facts(scenario: str) -> dict:
        outcome = everything[f"on_site_{scenario}"]
        if "error" in outcome:
            pytest.fail(f"on_site_{scenario} failed in the site:\n{outcome['error']}", pytrace=False)
        return outcome

    return facts


# --- The batch statement's promises ------------------------------------------------------------


def test_on_postgresql_senders_sharing_a_conversation_get_consecutive_seqs_in_request_order(observed):
    facts = observed("order")
    uid, frames, ab, ac = facts["uid"], facts["frames"], facts["chats"]["ab"], facts["chats"]["ac"]
    alice, bob, carol = uid["alice"], uid["bob"], uid["carol"]
    long = "long " + "x" * 300

    assert [(f["code"], f["req_id"], f["result"]["chat_id"], f["result"]["seq"]) for f in frames] == [
        (1, 1, ab["chat_id"], 1), (1, 2, ab["chat_id"], 2), (1, 3, ac["chat_id"], 1), (1, 4, ab["chat_id"], 3),
        (1, 5, ab["chat_id"], 4), (1, 6, ac["chat_id"], 2),
    ]
    assert facts["one_by_one"] == []  # the batch statement stored them all
    assert [row[:3] for row in ab["messages"]] == [
        [1, alice, "a1"], [2, bob, "b1"], [3, alice, "a2"], [4, bob, "https://cdn.example.com/b2.png"]]
    assert [row[:3] for row in ac["messages"]] == [[1, alice, "c1"], [2, alice, long]]
    msg_id_of = {(chat["chat_id"], row[0]): row[3] for chat in (ab, ac) for row in chat["messages"]}
    assert [f["result"]["msg_id"] for f in frames] == [
        msg_id_of[f["result"]["chat_id"], f["result"]["seq"]] for f in frames]
    # the newest message is the summary (cut to 255 characters), with its type
    assert ab["summary"] == [4, "https://cdn.example.com/b2.png", 2, bob]
    assert ac["summary"] == [2, long[:255], 1, alice]
    # each sender has read up to the last seq they sent; nobody else's marker moved
    assert ab["rows"] == {"alice": [3, False, None], "bob": [4, False, None]}
    assert ac["rows"] == {"alice": [2, False, None], "carol": [0, False, None]}


def test_on_postgresql_a_batch_brings_hidden_rows_back_but_leaves_rows_of_members_who_left(observed):
    facts = observed("hidden")

    assert [f["code"] for f in facts["frames"]] == [1, 1]
    assert facts["one_by_one"] == []
    assert facts["chats"]["ab"]["rows"] == {"alice": [1, False, None], "bob": [0, False, None]}
    assert facts["chats"]["ac"]["rows"] == {"alice": [1, False, None], "carol": [0, True, 0]}


def test_on_postgresql_first_messages_unknown_peers_and_bad_input_each_get_their_answer(observed):
    facts = observed("new_and_unknown_peers")
    uid, frames, ab, ad = facts["uid"], facts["frames"], facts["chats"]["ab"], facts["chats"]["ad"]

    assert frames[2] == {"code": -404, "msg": "to_uid: no such user", "result": None, "req_id": "unknown"}
    assert frames[3] == {"code": 0, "msg": "msg: required", "result": None, "req_id": "missing"}
    assert frames[4] == {"code": 0, "msg": "to_uid: cannot message yourself", "result": None, "req_id": "self"}
    assert [(f["code"], f["req_id"], f["result"]["seq"]) for f in (frames[0], frames[1], frames[5])] == [
        (1, "ok-1", 1), (1, "new", 1), (1, "ok-2", 2)]
    assert [row[:3] for row in ab["messages"]] == [[1, uid["alice"], "to bob"], [2, uid["bob"], "to alice"]]
    assert [row[:3] for row in ad["messages"]] == [[1, uid["alice"], "hello dave"]]
    assert ad["rows"] == {"alice": [1, False, None], "dave": [0, False, None]}
    assert facts["unknown_opened"] is False
    assert facts["one_by_one"] == []  # the first message to dave too: its conversation opened for the batch
    to_dave = [push for push in facts["pushes"] if push[0] == f"user.{uid['dave']}"]
    assert [(code, result["msg"]) for _, code, _, result in to_dave] == [(200, "hello dave")]


def test_on_postgresql_a_group_message_is_stored_in_the_batch_and_a_first_service_message_alone(observed):
    facts = observed("other_chat_types")
    uid, frames, team, shop = facts["uid"], facts["frames"], facts["chats"]["team"], facts["chats"]["shop"]

    assert [f["code"] for f in frames[:3]] == [1, 1, 1], frames
    assert frames[3] == {"code": -403, "msg": "system notices cannot be sent by users", "result": None,
                         "req_id": 4}
    assert frames[0]["result"]["msg_id"] not in facts["one_by_one"]
    assert frames[1]["result"]["msg_id"] not in facts["one_by_one"]  # a member's message: the batch
    assert frames[2]["result"]["msg_id"] in facts["one_by_one"]  # no session yet: routing, alone
    assert [row[:3] for row in team["messages"]] == [[1, uid["bob"], "to the team"]]
    assert (frames[1]["result"]["msg_id"], frames[1]["result"]["seq"]) == (team["messages"][0][3], 1)
    assert shop["messages"][0][:3] == [1, uid["carol"], "is the shop open?"]
    assert frames[2]["result"]["chat_id"] == shop["chat_id"]
    to_team = [push for push in facts["pushes"] if push[0] == f"chatgroup.{facts['group_id']}"]
    assert [(code, result["msg"], exclude) for _, code, exclude, result in to_team] == [
        (200, "to the team", "bob.phone")]


def test_on_postgresql_service_messages_are_stored_only_while_their_session_is_still_served(observed):
    facts = observed("service_sessions")
    uid, frames, sessions = facts["uid"], facts["frames"], facts["sessions"]

    assert [f["code"] for f in frames] == [1, 1, 1], frames
    # cora's question and amy's answer: the batch statement, which touched the session (answered)
    assert frames[0]["result"]["msg_id"] not in facts["one_by_one"]
    assert frames[1]["result"]["msg_id"] not in facts["one_by_one"]
    assert sessions["cora"] == [["open", uid["amy"], 1, True]]
    assert [row[:3] for row in facts["chats"]["cora"]["messages"]] == [
        [1, uid["cora"], "hello"], [2, uid["cora"], "from cora"], [3, uid["amy"], "answer"]]
    # dan's session closed after the batch read it: his message was left out, and went through
    # routing alone, opening a new session that starts with it
    assert frames[2]["result"]["msg_id"] in facts["one_by_one"]
    assert sessions["dan"][0][0] == "closed"
    assert sessions["dan"][1][:3] == ["open", uid["amy"], frames[2]["result"]["seq"]]


def test_on_postgresql_first_service_messages_open_their_sessions_together_and_go_in_the_batch(observed):
    facts = observed("first_service_messages")
    uid, frames, chats = facts["uid"], facts["frames"], facts["chats"]

    assert [f["code"] for f in frames] == [1, 1, 1, 1], frames
    assert facts["one_by_one"] == []  # no message went through routing alone
    assert facts["sessions"] == {"cora": ["open", "amy", 1], "dan": ["open", "ben", 1], "eve": ["open", "amy", 1]}
    assert facts["reasons"] == ["strategy"] * 3
    assert [row[:3] for row in chats["cora"]["messages"]] == [
        [1, uid["cora"], "one"], [2, uid["cora"], "two"], [3, None, "Welcome!"]]
    assert [row[:3] for row in chats["dan"]["messages"]] == [[1, uid["dan"], "hello"], [2, None, "Welcome!"]]
    to_ben = [(code, result.get("event") or result["msg"]) for group, code, _, result in facts["pushes"]
              if group == f"user.{uid['ben']}"]
    assert to_ben == [(305, "assigned"), (200, "hello"), (200, "Welcome!")]


def test_on_postgresql_a_known_session_is_not_read_again_and_a_change_elsewhere_sends_the_message_through_routing(
        observed):
    facts = observed("known_sessions")
    uid, steps = facts["uid"], facts["steps"]
    amy, ben = f"user.{uid['amy']}", f"user.{uid['ben']}"
    # the first message opens its session in the batch, which reads it once opened; the batches after
    # read nothing
    assert [steps[name]["reads"] for name in ("first", "read", "known")] == [2, 0, 0]
    assert [steps[name]["alone"] for name in ("first", "read", "known")] == [False, False, False]
    assert amy in steps["known"]["pushed_to"]
    # the shop masked contacts meanwhile: the message did not pass on the old setting
    changed = steps["guard changed"]
    assert changed["alone"] and changed["stored"] == "call me on ***"
    assert steps["read again"] == {**steps["read again"], "reads": 1, "alone": False}
    # amy was set offline meanwhile: the message went through routing, to ben
    offline = steps["agent offline"]
    assert offline["alone"] and ben in offline["pushed_to"] and amy not in offline["pushed_to"]
    # the session went idle meanwhile: routing closed it and opened a new one with that message
    assert steps["idle"]["alone"]
    assert facts["sessions"] == [["closed", uid["ben"]], ["open", uid["ben"]]]


def test_on_postgresql_a_resent_client_msg_id_answers_with_the_stored_message_and_takes_no_seq(observed):
    facts = observed("resends")
    uid, frames, first, ab = facts["uid"], facts["frames"], facts["first"], facts["chats"]["ab"]
    alice, bob = uid["alice"], uid["bob"]

    assert first["code"] == 1 and first["result"]["seq"] == 1
    assert frames[1] == {"code": 1, "msg": None, "result": first["result"], "req_id": 2}
    assert frames[3]["result"] == frames[4]["result"]  # the same new client_msg_id twice: stored once
    assert [(f["code"], f["result"]["seq"]) for f in (frames[0], frames[2], frames[3], frames[5])] == [
        (1, 2), (1, 3), (1, 4), (1, 5)]
    assert [row[:3] for row in ab["messages"]] == [
        [1, alice, "first"], [2, alice, "second"], [3, bob, "reply"], [4, alice, "tap"], [5, alice, "third"]]
    assert ab["summary"] == [5, "third", 1, alice]
    # the statement refused the whole batch (nothing stored), which then went one by one
    assert facts["one_by_one"] == sorted(f["result"]["msg_id"] for f in (frames[0], frames[2], frames[3], frames[5]))
    assert ab["rows"] == {"alice": [5, False, None], "bob": [3, False, None]}
    pushed = sorted(result["msg"] for _, code, _, result in facts["pushes"] if code == 200)
    assert pushed == ["reply", "second", "tap", "third"]


def test_on_postgresql_a_batch_pushes_200_to_the_peer_and_307_to_the_senders_other_sockets(observed):
    facts = observed("pushes")
    uid, frames = facts["uid"], facts["frames"]
    alices, bobs = frames[0]["result"], frames[1]["result"]

    assert [(group, code, exclude, result["msg_id"]) for group, code, exclude, result in facts["pushes"]] == [
        (f"user.{uid['bob']}", 200, "alice.phone", alices["msg_id"]),  # one push each, skipping the sending socket
        (f"user.{uid['alice']}", 307, "alice.phone", alices["msg_id"]),
        (f"user.{uid['alice']}", 200, "bob.laptop", bobs["msg_id"]),
        (f"user.{uid['bob']}", 307, "bob.laptop", bobs["msg_id"]),
    ]
    assert facts["one_by_one"] == []
    pushed = facts["pushes"][0][3]
    assert {key: pushed[key] for key in ("id", "from_uid", "to_uid", "chat_id", "chat_type", "msg_type", "msg",
                                         "seq", "client_msg_id", "createtime", "msg_id")} == {
        "id": uid["alice"], "from_uid": uid["alice"], "to_uid": uid["bob"], "chat_id": alices["chat_id"],
        "chat_type": 1, "msg_type": 1, "msg": "hi bob", "seq": 1, "client_msg_id": "a-1",
        "createtime": alices["createtime"], "msg_id": alices["msg_id"],
    }
    assert abs(pushed["createtime"] - time.time()) < 120


# --- A burst over two processes -----------------------------------------------------------------

PAIRS = 10
FANS = 4
BURST = 20


async def take_frames(client: Client, replies: int, pushes: int) -> list[dict]:
    """Every frame until `replies` replies and `pushes` 200 pushes came, then whatever else comes."""
    frames: list[dict] = []
    while sum(f["code"] == 200 for f in frames) < pushes or sum(f["code"] not in (200, 307) for f in frames) < replies:
        frames.append(await client.expect(lambda frame: True, timeout=20, what="the rest of the burst"))
    return frames + await client.settle()


def test_a_burst_over_two_processes_stores_each_message_once_gap_free_and_delivers_it_once(site):
    # given 10 pairs and 4 fans of one star, each with a socket on one of the two processes
    people = site.users(2 * PAIRS + 1 + FANS)
    pairs = [(people[2 * i], people[2 * i + 1]) for i in range(PAIRS)]
    star, fans = people[2 * PAIRS], people[2 * PAIRS + 1:]
    peer_of = {a.id: b for a, b in pairs} | {b.id: a for a, b in pairs} | {fan.id: star for fan in fans}
    senders = [person for person in people if person.id != star.id]
    expected_pushes = {person.id: BURST for pair in pairs for person in pair} | {fan.id: 0 for fan in fans}
    expected_pushes[star.id] = FANS * BURST

    async def scenario():
        clients = await asyncio.gather(*(Client.as_user(site.servers[index % 2], person)
                                         for index, person in enumerate(people)))
        client_of = {person.id: client for person, client in zip(people, clients)}
        try:
            # when every sender sends its burst without waiting, then resends its first message
            async def burst(person):
                client, peer = client_of[person.id], peer_of[person.id]
                chat_id = private_chat_id(person.id, peer.id)
                for number in range(BURST):
                    await client.send({**send_msg_frame(peer.id, f"{person.name}#{number}",
                                                        chat_id=chat_id if number % 2 else "",
                                                        client_msg_id=f"{person.name}-{number}"),
                                       "req_id": number})
                await client.send({**send_msg_frame(peer.id, f"{person.name}#0", client_msg_id=f"{person.name}-0"),
                                   "req_id": "resend"})

            await asyncio.gather(*(burst(person) for person in senders))
            frames = await asyncio.gather(*(
                take_frames(client_of[person.id], BURST + 1 if person.id != star.id else 0,
                            expected_pushes[person.id])
                for person in people))
            return dict(zip((person.id for person in people), frames))
        finally:
            await asyncio.gather(*(client.close() for client in clients))

    started = time.monotonic()
    frames_of = run(scenario(), timeout=60)
    burst_seconds = time.monotonic() - started

    # then every request was acked in order, and the resend answered with the first message
    acked: dict[int, list[dict]] = {}
    for person in senders:
        replies = [f for f in frames_of[person.id] if f["code"] not in (200, 307, -1)]
        assert [(r["code"], r["req_id"]) for r in replies] == [(1, n) for n in range(BURST)] + [(1, "resend")], (
            person.name, replies)
        assert replies[-1]["result"] == replies[0]["result"], person.name
        acked[person.id] = [r["result"] for r in replies[:BURST]]
    assert {frame["code"] for frame in frames_of[star.id]} == {200}  # the star only receives

    # and every receiver got each message meant for it exactly once, as a 200
    for person in people:
        pushes = [f for f in frames_of[person.id] if f["code"] in (200, 307)]
        assert all(push["code"] == 200 for push in pushes), person.name
        got = [push["result"]["msg_id"] for push in pushes]
        assert len(got) == len(set(got)), f"{person.name}: a message was pushed twice"
        expected = {r["msg_id"] for sender_id, results in acked.items() if peer_of[sender_id].id == person.id
                    for r in results}
        assert set(got) == expected, f"{person.name}: {len(expected - set(got))} missing, {set(got) - expected} extra"

    # and the database holds each message once, gap-free, with the newest as the summary
    chat_ids = sorted({private_chat_id(a.id, b.id) for a, b in pairs} | {private_chat_id(f.id, star.id) for f in fans})
    with psycopg.connect(site.postgres_url) as db:
        conversations = db.execute(
            "SELECT c.id, c.chat_id, c.last_seq, c.last_msg, c.last_uid, array_agg(m.seq ORDER BY m.seq), "
            "       (SELECT row(m2.msg, m2.sender_id) FROM chat_message m2 "
            "        WHERE m2.conversation_id = c.id ORDER BY m2.seq DESC LIMIT 1) "
            "FROM chat_conversation c JOIN chat_message m ON m.conversation_id = c.id "
            "WHERE c.chat_id = ANY(%s) GROUP BY c.id ORDER BY c.chat_id", [chat_ids]).fetchall()
        duplicates = db.execute(
            "SELECT sender_id, client_msg_id, count(*) FROM chat_message m JOIN chat_conversation c "
            "ON c.id = m.conversation_id WHERE c.chat_id = ANY(%s) GROUP BY 1, 2 HAVING count(*) > 1",
            [chat_ids]).fetchall()
        stored = db.execute(
            "SELECT m.id, m.sender_id, m.client_msg_id, m.seq, c.chat_id FROM chat_message m "
            "JOIN chat_conversation c ON c.id = m.conversation_id WHERE c.chat_id = ANY(%s)", [chat_ids]).fetchall()
        markers = db.execute(
            "SELECT p.user_id, c.chat_id, p.last_read_seq, "
            "       (SELECT max(m.seq) FROM chat_message m WHERE m.conversation_id = c.id AND m.sender_id = p.user_id) "
            "FROM chat_participant p JOIN chat_conversation c ON c.id = p.conversation_id "
            "WHERE c.chat_id = ANY(%s)", [chat_ids]).fetchall()
    assert [row[1] for row in conversations] == chat_ids
    for _, chat_id, last_seq, last_msg, last_uid, seqs, (newest_msg, newest_sender) in conversations:
        assert seqs == list(range(1, last_seq + 1)), f"{chat_id}: seqs {seqs}"
        expected_total = BURST if star.id in map(int, chat_id.split("_")) else 2 * BURST
        assert last_seq == expected_total, chat_id
        assert (last_msg, last_uid) == (newest_msg, int(newest_sender)), chat_id
    assert duplicates == []
    by_sender_and_id = {(sender_id, client_msg_id): (msg_id, seq, chat_id)
                        for msg_id, sender_id, client_msg_id, seq, chat_id in stored}
    for person in senders:
        for number, result in enumerate(acked[person.id]):
            assert by_sender_and_id[person.id, f"{person.name}-{number}"] == (
                result["msg_id"], result["seq"], result["chat_id"])
    assert len(stored) == len(senders) * BURST
    for user_id, chat_id, last_read_seq, last_sent in markers:
        if last_sent is not None:
            assert last_read_seq >= last_sent, f"user {user_id} in {chat_id}: read {last_read_seq} < sent {last_sent}"
    assert burst_seconds < 30
