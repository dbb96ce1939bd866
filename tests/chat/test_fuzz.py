"""Property-based fuzzing of the socket (issue 5): whatever a client sends, the server answers.

Frames go through the real imchat.asgi.application with channels' WebsocketCommunicator. The
property, for every batch of frames hypothesis makes up (random JSON, wrong types in every field of
every real action, huge numbers, odd unicode, deep nesting, unknown actions, non-JSON text, binary):

- every frame gets exactly one reply, in order, in the protocol shape {code: int, msg: str|null,
  result, [req_id]}, and the req_id it sent (when it sent a usable one) comes back;
- no reply is -500 (a -500 is an unhandled exception in a handler: a bug);
- the socket stays open (a sentinel request after each batch is answered; a ping at the end gets PONG)
  and another user's socket keeps being served;
- the database stays consistent: every conversation's messages have seqs exactly 1..last_seq, and no
  party's read marker, join or leave mark is past last_seq.

It runs on the configured database: with DATABASE_URL=postgres://... it also holds PostgreSQL to
the property (text holding NUL got -500 there). IM_FUZZ_EXAMPLES sets the number of batches (300 by
default), IM_FUZZ_TRACE=1 prints every frame and the code it got. `found_before` lists the frames
that once broke the property; they are tried first on every run.

How it runs: the socket test body (async, on asgiref's loop, its database work back on the test's
thread as in test_consumer.py) hands the loop to a worker thread that runs hypothesis; each example
submits its exchange to the loop and waits. So sockets and the database connection live for the
whole run, and every database access happens on the test's thread.
"""

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from channels.db import database_sync_to_async
from django.db.models import Count, F, Max, Min, Q
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat import handlers, services
from chat.groups import group_create
from chat.models import Conversation, Message, Participant
from customer_service import services as service_services
from tests.factories import caller_of, make_user, open_socket, synchronously

pytestmark = pytest.mark.django_db(transaction=True)

MAX_EXAMPLES = int(os.environ.get("IM_FUZZ_EXAMPLES", "300"))
REPLY_SECONDS = 10
PUSH_CODES = frozenset({200, 301, 302, 303, 304, 305, 306, 307})
REPLY_KEYS = {"code", "msg", "result"}
INT64_MAX = 2**63 - 1

# Every content field a real action reads (chat.handlers, customer_service.handlers, chat.inputs).
FIELDS = ["to_uid", "chat_type", "msg_type", "msg", "chat_id", "shop_id", "role_type", "client_msg_id",
          "group_id", "uids", "uid", "name", "status", "chats", "since", "limit", "msg_id", "page",
          "is_service", "role", "muted"]


# --- The world the fuzzer acts in ---------------------------------------------------------------


@dataclass
class World:
    """The fuzzing user, a peer and a stranger, their chats, groups and shops: pools of real ids.

    The pools grow with what the fuzzer creates (groups, messages, chats), so later frames act on it.
    """

    me: Any
    peer: Any
    stranger: Any
    user_ids: list[int]
    chat_ids: list[str]
    group_ids: list[int]
    shop_ids: list[int]
    msg_ids: list[int]

    def learn(self, reply: dict) -> None:
        result = reply.get("result")
        if reply.get("code") != 1 or not isinstance(result, dict):
            return
        for key, pool in (("group_id", self.group_ids), ("msg_id", self.msg_ids), ("chat_id", self.chat_ids)):
            value = result.get(key)
            if value is not None and value not in pool:
                pool.append(value)


@pytest.fixture
def world(db) -> World:
    me = make_user(username="fuzzer", nickname="Fuzzer")
    peer = make_user(username="peer", nickname="Peer")
    stranger = make_user(username="stranger", nickname="Stranger")
    merchant = make_user(username="merchant", nickname="Merchant")
    my_shop = service_services.shop_create(name="Mine", owner=merchant, offline_notice="away")
    service_services.agent_add(shop=my_shop, user=me, status="online")
    other_shop = service_services.shop_create(name="Other", owner=stranger, offline_notice="closed")

    def say(sender, to_uid, text):
        return services.private_message_send(caller=caller_of(sender), to_uid=to_uid, chat_id=None, msg_type=1,
                                             msg=text, client_msg_id=None)

    sent = [say(me, peer.pk, "hello"), say(peer, me.pk, "hi"), say(peer, stranger.pk, "secret")]
    mine = group_create(caller=caller_of(me), name="mine", uids=[peer.pk])
    joined = group_create(caller=caller_of(peer), name="joined", uids=[me.pk, stranger.pk])
    theirs = group_create(caller=caller_of(stranger), name="theirs", uids=[peer.pk])
    shop_chat = service_services.consumer_message_send(caller=caller_of(peer), shop_id=my_shop.pk, msg_type=1,
                                                       msg="help", client_msg_id="peer-1")
    other_chat = service_services.consumer_message_send(caller=caller_of(peer), shop_id=other_shop.pk, msg_type=1,
                                                        msg="help", client_msg_id="peer-2")
    return World(
        me=me, peer=peer, stranger=stranger,
        user_ids=[me.pk, peer.pk, stranger.pk, merchant.pk, 999_999],
        chat_ids=[sent[0].chat_id, sent[2].chat_id, f"g{mine.pk}", f"g{joined.pk}", f"g{theirs.pk}",
                  shop_chat.chat_id, other_chat.chat_id, f"sys_{me.pk}", "sys_0", f"{me.pk}_{me.pk}",
                  f"{my_shop.pk}____{me.pk}", f"{other_shop.pk}____{me.pk}"],
        group_ids=[mine.pk, joined.pk, theirs.pk, 999_999],
        shop_ids=[my_shop.pk, other_shop.pk, 999_999],
        msg_ids=[s.msg_id for s in sent] + [shop_chat.msg_id, other_chat.msg_id, 999_999],
    )


@pytest.fixture
def no_rate_limits(settings) -> None:
    """-429 would hide what the handlers do with the frames."""
    settings.IM_RATE_LIMIT = 1_000_000
    settings.IM_RATE_BURST = 1_000_000
    settings.IM_USER_RATE_LIMIT = 1_000_000


# --- Strategies -----------------------------------------------------------------------------------

# Any code point but lone surrogates (JSON text cannot carry them): controls, NUL, RTL marks,
# private use, noncharacters, astral planes.
odd_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
huge_ints = st.sampled_from([INT64_MAX, INT64_MAX + 1, 2**64 - 1, 2**64, 2**70, -(2**63), -(2**63) - 1, 10**30,
                             -(10**30), 2**53 + 1, 10**12, 253402300800, 99999999999, 2**31, 2**32, 2**62, 10**18])
numbers = st.one_of(st.integers(min_value=-(2**66), max_value=2**66), huge_ints,
                    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.5, -0.0, 1e300, 1.0, 3.0]))
json_scalars = st.one_of(st.none(), st.booleans(), numbers, odd_text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4),
    max_leaves=12,
)
# A wrong value for any field: wrong types, huge numbers, odd text, nested things, numeric strings.
anything = st.one_of(json_values, huge_ints, huge_ints.map(str), st.sampled_from(["", " ", "1.5", "-1", "0x10",
                                                                                  "١٢", "1e3", "\x00", "None"]))

# The fields each action reads (chat.handlers, customer_service.handlers, chat.inputs).
ACTION_FIELDS = {
    ("chat", "sendmsg"): ["to_uid", "chat_type", "msg_type", "msg", "chat_id", "shop_id", "role_type",
                          "client_msg_id"],
    ("chat", "setchatread"): ["chat_id", "role_type"],
    ("chat", "delchat"): ["chat_id", "role_type"],
    ("chat", "typing"): ["chat_id", "role_type"],
    ("chat", "sync"): ["chats", "since", "limit"],
    ("chat", "recall"): ["msg_id"],
    ("user", "recentchat"): ["is_service", "shop_id"],
    ("user", "friendlist"): [],
    ("user", "chatrecord"): ["chat_id", "to_uid", "chat_type", "page", "role_type"],
    ("group", "create"): ["name", "uids"],
    ("group", "invite"): ["group_id", "uids"],
    ("group", "leave"): ["group_id"],
    ("group", "kick"): ["group_id", "uid"],
    ("group", "members"): ["group_id"],
    ("group", "rename"): ["group_id", "name"],
    ("group", "setrole"): ["group_id", "uid", "role"],
    ("group", "mute"): ["group_id", "uid", "muted"],
    ("group", "dissolve"): ["group_id"],
    ("service", "setstatus"): ["status", "shop_id"],
    ("service", "transfer"): ["chat_id", "to_uid"],
    ("service", "close"): ["chat_id"],
}


def pick(pool: list) -> st.SearchStrategy:
    """A member of a pool that grows during the run (read when drawn)."""
    return st.integers(min_value=0, max_value=10**6).map(lambda index: pool[index % len(pool)])


def plausible_values(world: World) -> dict[str, st.SearchStrategy]:
    """For each content field, values a real client could send (real ids, numbers as strings too)."""
    users, shops, groups = pick(world.user_ids), pick(world.shop_ids), pick(world.group_ids)
    chats = pick(world.chat_ids)

    def id_forms(ids):
        return st.one_of(ids, ids.map(str))

    return {
        "to_uid": id_forms(st.one_of(users, users, shops, groups, huge_ints)),
        "chat_type": id_forms(st.sampled_from([1, 1, 2, 4, 4, 3])),
        "msg_type": id_forms(st.sampled_from([1, 1, 1, 2])),
        "msg": st.one_of(odd_text.filter(bool), st.sampled_from(["https://x.test/a.png", "<script>x</script>"]),
                         st.integers(min_value=4998, max_value=5002).map(lambda n: "m" * n)),
        "chat_id": st.one_of(chats, chats, st.sampled_from(["", None])),
        "shop_id": id_forms(st.one_of(shops, st.just(0))),
        "role_type": st.sampled_from([0, 1, "0", "1", "user", "service"]),
        "client_msg_id": st.one_of(st.none(), st.sampled_from(["c1", "c2", "c3", "peer-1"]), st.text(max_size=64)),
        "group_id": id_forms(groups | huge_ints),
        "uids": st.lists(id_forms(users), max_size=4),
        "uid": id_forms(users),
        "name": odd_text.filter(str.strip),
        "status": st.sampled_from(["online", "busy", "offline"]),
        "chats": st.dictionaries(chats, st.integers(min_value=0, max_value=12) | huge_ints, max_size=5),
        "since": st.one_of(st.integers(min_value=0, max_value=2_000_000_000), st.just(0), huge_ints),
        "limit": st.one_of(st.integers(min_value=1, max_value=500), huge_ints),
        "msg_id": id_forms(pick(world.msg_ids) | huge_ints),
        "page": st.one_of(st.integers(min_value=1, max_value=3), huge_ints),
        "is_service": st.booleans(),
        "role": st.sampled_from(["admin", "member"]),
        "muted": st.booleans(),
    }


def random_case(word: str) -> st.SearchStrategy[str]:
    """Class and action are matched case-insensitively: send them in any case."""
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper))
    )


def frames(world: World) -> st.SearchStrategy:
    """One frame: a dict (sent as JSON), a str (sent as is) or bytes (a binary frame)."""
    plausible = plausible_values(world)
    req_ids = st.one_of(st.text(max_size=140), st.integers(min_value=-(2**65), max_value=2**65),
                        st.floats(allow_nan=False, allow_infinity=False), json_values)

    @st.composite
    def mutated_content(draw, key: tuple[str, str]) -> dict:
        """A plausible content for the action, then some fields dropped, others set to wrong values."""
        # An action added to the table after this test was written gets some of the known fields.
        fields = ACTION_FIELDS.get(key) or draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=6))
        content = {name: draw(plausible[name]) for name in fields}
        for name in draw(st.sets(st.sampled_from(fields), max_size=len(fields))) if fields else ():
            if draw(st.integers(min_value=0, max_value=3)) == 0:
                del content[name]
        # Wrong values mostly in the action's own fields, sometimes in any field.
        names = st.sampled_from(fields) | st.sampled_from(FIELDS) if fields else st.sampled_from(FIELDS)
        if draw(st.integers(min_value=0, max_value=2)):
            content.update(draw(st.dictionaries(names, anything, min_size=1, max_size=2)))
        return content

    def real_action(key: tuple[str, str]) -> st.SearchStrategy[dict]:
        content = st.one_of(mutated_content(key), mutated_content(key), mutated_content(key),
                            st.fixed_dictionaries({}, optional={name: anything for name in FIELDS}),
                            st.none(), json_values)
        return st.fixed_dictionaries({"class": random_case(key[0]), "action": random_case(key[1]),
                                      "content": content}, optional={"req_id": req_ids})

    real = st.one_of(*[real_action(key) for key in sorted(handlers.HANDLERS)])
    unknown = st.fixed_dictionaries(
        {"class": st.one_of(st.sampled_from(["chat", "user", "group", "service"]), odd_text),
         "action": st.one_of(odd_text, st.sampled_from(["sendmsgs", "__init__", "HANDLERS", "run"]))},
        optional={"content": json_values, "req_id": req_ids},
    )
    wrong_envelope = st.fixed_dictionaries(
        {}, optional={"class": json_values, "action": json_values, "content": json_values, "req_id": json_values}
    )
    nesting = st.integers(min_value=1, max_value=1500)
    deep = st.one_of(
        nesting.map(lambda d: '{"class":"chat","action":"sync","content":{"chats":' + "[" * d + "]" * d + "}}"),
        nesting.map(lambda d: '{"class":"chat","action":"sendMsg","content":' + '{"a":' * d + "1" + "}" * d + "}"),
        nesting.map(lambda d: '{"class":"group","action":"create","content":{"name":"n","uids":'
                    + "[" * d + "1" + "]" * d + "}}"),
        nesting.map(lambda d: "[" * d + "]" * d),
    )
    broken_json = st.sampled_from(['{"class":"chat"', '{"class":"chat","action":"sync","content":{"msg":"\\ud800"}}',
                                   "ping", "", " ", "null", "[]", '"chat"', "NaN", '{"class":1e999}', "\x00"])
    return st.one_of(real, real, real, real, real, real, unknown, wrong_envelope, json_values, odd_text, deep,
                     broken_json, st.binary(max_size=64))


# --- Exchanging frames ----------------------------------------------------------------------------


def encode(frame: Any) -> dict:
    """The ASGI receive event of one frame (send_to() refuses empty frames; a client may send them)."""
    if isinstance(frame, bytes):
        return {"type": "websocket.receive", "bytes": frame}
    if isinstance(frame, str):
        return {"type": "websocket.receive", "text": frame}
    return {"type": "websocket.receive", "text": json.dumps(frame, ensure_ascii=False)}


def expected_req_id(frame: Any) -> tuple[bool, Any]:
    """(whether the reply must echo a req_id, which one), as the server reads the frame."""
    if not isinstance(frame, dict):
        return False, None
    seen = orjson.loads(json.dumps(frame, ensure_ascii=False))  # what the server decodes (big ints -> floats)
    cls, req_id = seen.get("class"), seen.get("req_id")
    if cls is None or cls == "" or not isinstance(req_id, str | int | float) or isinstance(req_id, bool):
        return False, None
    return True, req_id[:128] if isinstance(req_id, str) else req_id


def check_shape(frame: Any, context: str) -> None:
    assert isinstance(frame, dict), f"not an object: {frame!r} ({context})"
    assert REPLY_KEYS <= frame.keys() <= REPLY_KEYS | {"req_id"}, f"bad keys {sorted(frame)} ({context})"
    assert isinstance(frame["code"], int) and not isinstance(frame["code"], bool), f"code {frame!r} ({context})"
    assert frame["msg"] is None or isinstance(frame["msg"], str), f"msg {frame!r} ({context})"


async def next_frame(socket, context: str) -> dict:
    output = await socket.receive_output(timeout=REPLY_SECONDS)
    assert output["type"] == "websocket.send", f"the socket was closed: {output} ({context})"
    assert output.get("text") is not None, f"a binary frame: {output} ({context})"
    return json.loads(output["text"])


async def exchange(socket, batch: list, serial: int) -> list[dict]:
    """Send a batch then a sentinel; return the replies before the sentinel (pushes checked, dropped)."""
    sentinel = f"sentinel-{serial}"
    for frame in batch:
        await socket.send_input(encode(frame))
    await socket.send_json_to({"class": "fuzz", "action": "sentinel", "req_id": sentinel})
    replies = []
    while True:
        frame = await next_frame(socket, f"batch {serial}: {batch!r:.2000}")
        check_shape(frame, f"batch {serial}")
        if frame.get("req_id") == sentinel and frame["code"] == 0:
            return replies
        if frame["code"] not in PUSH_CODES:
            replies.append(frame)


@database_sync_to_async
def inconsistencies() -> list[str]:
    """What breaks the seq invariants, as readable lines (empty when all is well)."""
    found = []
    stats = Conversation.objects.annotate(n=Count("messages"), low=Min("messages__seq"), high=Max("messages__seq"))
    for row in stats:
        if row.n != row.last_seq or (row.n and (row.low != 1 or row.high != row.last_seq)):
            found.append(f"{row.chat_id}: last_seq {row.last_seq}, {row.n} messages, seqs {row.low}..{row.high}")
    beyond = Participant.objects.filter(
        Q(last_read_seq__gt=F("conversation__last_seq")) | Q(joined_seq__gt=F("conversation__last_seq"))
        | Q(left_seq__gt=F("conversation__last_seq"))
    )
    for row in beyond.select_related("conversation"):
        found.append(f"{row.conversation.chat_id} party {row.user_id or 'shop ' + str(row.shop_id)}: read "
                     f"{row.last_read_seq}, joined {row.joined_seq}, left {row.left_seq} > {row.conversation.last_seq}")
    duplicated = (Message.objects.filter(client_msg_id__isnull=False).values("sender_id", "client_msg_id")
                  .annotate(n=Count("pk")).filter(n__gt=1))
    found.extend(f"client_msg_id stored twice: {row}" for row in duplicated)
    return found


# --- The property ---------------------------------------------------------------------------------


def found_before(world: World) -> list:
    """Frames that once got -500 (each bug found by this test), always tried first."""
    private_chat = world.chat_ids[0]
    return [
        # datetime.fromtimestamp() beyond year 9999 raised in chat.sync (fixed: code 0).
        {"class": "chat", "action": "sync", "content": {"chats": {}, "since": INT64_MAX, "limit": 1}},
        {"class": "chat", "action": "sync", "content": {"chats": {private_chat: 0}, "since": 253402300800}},
        # The history page's row offset overflowed the database's integer (fixed: code 0).
        {"class": "user", "action": "chatRecord", "content": {"chat_id": private_chat, "page": INT64_MAX}},
        # PostgreSQL cannot store or compare text holding NUL: these got -500 there (not on SQLite).
        {"class": "chat", "action": "sendMsg",
         "content": {"to_uid": world.peer.pk, "chat_type": 1, "msg_type": 1, "msg": "a\x00b"}},
        {"class": "chat", "action": "sendMsg", "content": {"to_uid": world.peer.pk, "chat_type": 1, "msg_type": 1,
                                                           "msg": "ok", "client_msg_id": "nul\x00"}},
        {"class": "group", "action": "create", "content": {"name": "a\x00b", "uids": []}},
        {"class": "chat", "action": "sync", "content": {"chats": {"nul\x00": 0}}},
    ]


@synchronously
async def test_every_frame_gets_one_well_formed_reply_and_nothing_breaks(no_rate_limits, world):
    mine, my_other, peers = await open_socket(world.me), await open_socket(world.me), await open_socket(world.peer)
    loop = asyncio.get_running_loop()
    serial = iter(range(1_000_000))
    failures: list[BaseException] = []

    def on_loop(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, print_blob=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much, HealthCheck.large_base_example])
    @given(batch=st.lists(frames(world), min_size=1, max_size=6))
    @example(batch=found_before(world))
    def property_holds(batch):
        number = next(serial)
        replies = on_loop(exchange(mine, batch, number))
        for reply in replies:
            world.learn(reply)
        if os.environ.get("IM_FUZZ_TRACE"):
            for frame, reply in zip(batch, replies):
                print(f"{str(frame)[:150]!r} -> {reply['code']} {str(reply['msg'])[:80]}")
        assert len(replies) == len(batch), f"{len(batch)} frames, {len(replies)} replies: {replies!r:.3000}"
        for frame, reply in zip(batch, replies):
            where = f"frame {frame!r:.1500} -> {reply!r:.1500}"
            assert reply["code"] != -500, f"server fault (an unhandled exception): {where}"
            assert reply["code"] != -429, where
            must_echo, req_id = expected_req_id(frame)
            if "req_id" in reply:
                assert must_echo and reply["req_id"] == req_id, f"wrong req_id: {where}"
            elif must_echo:
                assert reply["code"] == -1, f"req_id not echoed: {where}"
        broken = on_loop(inconsistencies())
        assert not broken, f"database inconsistent after {batch!r:.2000}: {broken}"

    def run_property():
        try:
            property_holds()
        except BaseException as error:  # handed back to the test's thread below
            failures.append(error)

    await loop.run_in_executor(None, run_property)
    if failures:
        raise failures[0]

    # The socket is still open and served, and so are the user's other socket and another user's.
    for socket in (mine, my_other, peers):
        await socket.send_to(text_data="ping")
        while True:
            frame = await next_frame(socket, "final ping")
            check_shape(frame, "final ping")
            if frame["code"] not in PUSH_CODES:
                break
        assert frame == {"code": -1, "msg": "PONG", "result": None}
    assert await inconsistencies() == []
    for socket in (mine, my_other, peers):
        await socket.disconnect()
