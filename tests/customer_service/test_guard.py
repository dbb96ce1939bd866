"""The contact guard on customer-service messages: off, flag and mask, on the batched fast path and
the slow path, for consumers and agents; what the shop side sees, what the consumer never does."""

import json
from collections.abc import Callable

import pytest

from chat import handlers
from chat.models import Message
from chat.protocol import Envelope
from customer_service import guard, reports, selectors, services
from customer_service.models import ServiceSession, Shop, WebhookDelivery
from imchat.errors import Code
from tests import factories
from tests.customer_service.conftest import agent_frame, consumer_frame

Mode = Shop.ContactGuard
CONTACT = "加我微信 abc_12345"
SHOP_AGENTS = "shop.{}.agents"


@pytest.fixture(autouse=True)
def webhooks_on(settings):
    settings.IM_WEBHOOK_URL = "https://mall.example.com/hooks/imchat"
    settings.IM_WEBHOOK_SECRET = "a-test-secret-of-16-plus"


@pytest.fixture
def batch(pushes) -> Callable:
    """Many chat.sendMsg at once, as the batcher sends them: [(user, content)] -> (frames, pushes)."""

    def send(*requests):
        with pushes() as sent:
            frames, _ = handlers.run_batch([
                (factories.caller_of(account), Envelope(cls="chat", action="sendMsg", content=content))
                for account, content in requests
            ])
        return frames, sent

    return send


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    calls = {"lock_shop": 0, "live_sessions_of": 0}
    for module, name in ((services, "lock_shop"), (selectors, "live_sessions_of")):
        real = getattr(module, name)

        def counting(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return calls


def set_mode(shop: Shop, mode: str) -> None:
    guard.shop_set_contact_guard(shop=shop, mode=mode)


@pytest.fixture
def open_session(shop, amy, consumer, make_agent, connect, say):
    """amy online and connected; the consumer's session with her is open (so the next message is batched)."""
    make_agent(shop, amy)
    connect(amy)
    assert say(consumer, shop, "hello").code == 1
    assert ServiceSession.objects.get(shop=shop).agent_id == amy.pk
    return shop


def flagged_pushes(sent) -> list:
    return [s for s in sent if s.code == Code.MESSAGE_FLAGGED]


def flagged_webhooks() -> list[dict]:
    return [json.loads(row.body) for row in WebhookDelivery.objects.filter(event="message.flagged").order_by("pk")]


# --- flag -------------------------------------------------------------------------------------------


def test_flag_on_the_slow_path_delivers_the_text_and_warns_the_shops_agents_only(shop, amy, consumer, make_agent,
                                                                                    connect, say):
    make_agent(shop, amy)
    connect(amy)

    outcome = say(consumer, shop, CONTACT)  # the first message: routed, one by one

    assert outcome.code == 1 and "guard" not in outcome.result
    message = Message.objects.get(pk=outcome.result["msg_id"])
    assert (message.msg, message.guard_kinds) == (CONTACT, "wechat")
    assert [m["msg"] for m in outcome.to(f"user.{amy.pk}", Code.MESSAGE)] == [CONTACT]
    [flag] = flagged_pushes(outcome.sent)
    assert flag.group == SHOP_AGENTS.format(shop.pk)
    assert flag.result == {"chat_id": f"{shop.pk}____{consumer.pk}", "shop_id": shop.pk, "msg_id": message.pk,
                           "seq": message.seq, "kinds": ["wechat"], "from_uid": consumer.pk}
    [hook] = flagged_webhooks()
    assert hook["event"] == "message.flagged"
    assert hook["data"]["kinds"] == ["wechat"] and hook["data"]["side"] == "consumer"
    assert hook["data"]["message"]["msg"] == CONTACT and hook["data"]["message"]["msg_id"] == message.pk


def test_flag_in_a_batch_marks_only_the_flagged_message_with_no_extra_read_or_lock(
    shop, amy, ben, consumer, consumer2, make_agent, connect, say, batch, counted
):
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)
    for someone in (consumer, consumer2):
        assert say(someone, shop, "first").code == 1
    counted.update(lock_shop=0, live_sessions_of=0)

    frames, sent = batch((consumer, consumer_frame(shop.pk, "电话 138 0013 8000")),
                         (consumer2, consumer_frame(shop.pk, "is the blue one in stock?")))

    assert [frame["code"] for frame in frames] == [1, 1]
    assert counted == {"lock_shop": 0, "live_sessions_of": 1}  # the setting came with the sessions
    flagged = Message.objects.exclude(guard_kinds="")
    assert [(m.msg, m.guard_kinds) for m in flagged] == [("电话 138 0013 8000", "phone")]
    [flag] = flagged_pushes(sent)
    assert flag.group == SHOP_AGENTS.format(shop.pk) and flag.result["msg_id"] == frames[0]["result"]["msg_id"]
    assert [hook["data"]["msg_id"] for hook in flagged_webhooks()] == [frames[0]["result"]["msg_id"]]


def test_an_agents_answers_in_their_own_session_are_flagged_too(open_session, amy, consumer, answer, batch):
    shop = open_session

    first = answer(amy, shop, consumer, "my wechat: amy_helper1")  # answers go in the batch when the session is hers
    frames, sent = batch((amy, agent_frame(shop.pk, consumer.pk, "mail me amy@othershop.com")))

    assert first.code == 1 and frames[0]["code"] == 1
    kinds = dict(Message.objects.exclude(guard_kinds="").values_list("msg", "guard_kinds"))
    assert kinds == {"my wechat: amy_helper1": "wechat", "mail me amy@othershop.com": "email"}
    for pushed in (flagged_pushes(first.sent), flagged_pushes(sent)):
        assert [(s.group, s.result["from_uid"]) for s in pushed] == [(SHOP_AGENTS.format(shop.pk), amy.pk)]
    assert [hook["data"]["side"] for hook in flagged_webhooks()] == ["agent", "agent"]


def test_an_agent_claiming_a_queued_session_goes_the_slow_path_and_is_flagged(shop, amy, consumer, make_agent, say,
                                                                              answer):
    make_agent(shop, amy)  # offline: the consumer is queued
    assert say(consumer, shop, "anyone?").code == 1

    outcome = answer(amy, shop, consumer, "call me 13800138000")

    assert outcome.code == 1
    assert Message.objects.get(pk=outcome.result["msg_id"]).guard_kinds == "phone"
    assert [s.group for s in flagged_pushes(outcome.sent)] == [SHOP_AGENTS.format(shop.pk)]


def test_the_311_never_reaches_the_consumer(open_session, consumer, say, socket_joins):
    joined = socket_joins(consumer)  # the consumer's socket: its groups are only their own

    outcome = say(consumer, open_session, CONTACT, channel=joined.frame["channel"])

    assert flagged_pushes(outcome.sent)
    consumer_groups = {f"user.{consumer.pk}"}
    assert not [s for s in outcome.sent if s.code == Code.MESSAGE_FLAGGED and s.group in consumer_groups]
    assert SHOP_AGENTS.format(open_session.pk) not in handlers.socket_opened(
        user_id=consumer.pk, claims=None, base_url=factories.BASE_URL, channel_name="x").groups


def test_the_shop_side_history_shows_the_flag_and_the_consumers_does_not(open_session, amy, consumer, say, ask):
    say(consumer, open_session, CONTACT)
    chat_id = f"{open_session.pk}____{consumer.pk}"

    shop_side = ask(amy, "user", "chatRecord", {"chat_id": chat_id, "role_type": 1}).result["rows"]
    own_side = ask(consumer, "user", "chatRecord", {"chat_id": chat_id}).result["rows"]

    assert [(row["msg"], row.get("guard")) for row in shop_side] == [(CONTACT, ["wechat"]), ("hello", None)]
    assert all("guard" not in row for row in own_side)


# --- mask -------------------------------------------------------------------------------------------


def test_mask_on_the_slow_path_stores_and_pushes_the_masked_text_and_tells_the_sender(shop, amy, consumer,
                                                                                        make_agent, connect, say):
    set_mode(shop, Mode.MASK)
    make_agent(shop, amy)
    connect(amy)
    other_socket = connect(consumer)

    outcome = say(consumer, shop, CONTACT)

    assert outcome.code == 1
    assert outcome.result["guard"] == "masked" and outcome.result["msg"] == "加我微信 ***"
    assert Message.objects.get(pk=outcome.result["msg_id"]).msg == "加我微信 ***"
    assert [m["msg"] for m in outcome.to(f"user.{amy.pk}", Code.MESSAGE)] == ["加我微信 ***"]
    assert [m["msg"] for m in outcome.to(f"user.{consumer.pk}", Code.OWN_MESSAGE)] == ["加我微信 ***"]
    assert not flagged_pushes(outcome.sent) and not flagged_webhooks()
    assert other_socket
    assert CONTACT not in {m.msg for m in Message.objects.all()}
    assert "abc_12345" not in ServiceSession.objects.get(shop=shop).conversation.last_msg


def test_mask_in_a_batch_masks_each_message_and_the_others_pass(open_session, amy, consumer, batch, counted):
    set_mode(open_session, Mode.MASK)

    frames, sent = batch((consumer, consumer_frame(open_session.pk, "QQ 12345678 或 jane@gmail.com")),
                         (amy, agent_frame(open_session.pk, consumer.pk, "好的，稍等")))

    assert counted["lock_shop"] == 0
    assert frames[0]["result"]["guard"] == "masked" and frames[0]["result"]["msg"] == "QQ *** 或 ***"
    assert "guard" not in frames[1]["result"]
    assert [m["msg"] for m in (s.result for s in sent if s.code == Code.MESSAGE)] == ["QQ *** 或 ***", "好的，稍等"]
    assert list(Message.objects.order_by("seq").values_list("msg", flat=True))[-2:] == ["QQ *** 或 ***", "好的，稍等"]


def test_mask_hides_an_agents_contact_from_the_consumer(open_session, amy, consumer, answer):
    set_mode(open_session, Mode.MASK)

    outcome = answer(amy, open_session, consumer, "加我V: amy_helper1 下单便宜")

    assert outcome.result["msg"] == "加我V: *** 下单便宜"
    assert [m["msg"] for m in outcome.to(f"user.{consumer.pk}", Code.MESSAGE)] == ["加我V: *** 下单便宜"]


# --- off, and what the guard leaves alone -----------------------------------------------------------


def test_off_does_nothing_on_either_path(open_session, amy, consumer, say, batch):
    set_mode(open_session, Mode.OFF)

    slow = say(consumer, open_session, CONTACT)
    frames, sent = batch((consumer, consumer_frame(open_session.pk, "13800138000")))

    assert "guard" not in slow.result and "guard" not in frames[0]["result"]
    assert not Message.objects.exclude(guard_kinds="").exists()
    assert not flagged_pushes(slow.sent) and not flagged_pushes(sent) and not flagged_webhooks()


def test_a_new_mode_applies_to_the_very_next_batched_message(open_session, consumer, batch):
    frames, _ = batch((consumer, consumer_frame(open_session.pk, CONTACT)))
    assert "guard" not in frames[0]["result"]

    set_mode(open_session, Mode.MASK)
    frames, _ = batch((consumer, consumer_frame(open_session.pk, CONTACT)))

    assert frames[0]["result"]["guard"] == "masked"


def test_images_shop_talk_and_the_malls_own_links_pass(open_session, consumer, say, settings):
    settings.IM_GUARD_ALLOWED_DOMAINS = ["mall.example.com"]
    settings.IM_PUBLIC_URL = "https://im.example.org"
    set_mode(open_session, Mode.MASK)

    texts = ["订单号 13800138000 什么时候发货", "这件 ¥129.00，尺码 170/88A", "https://mall.example.com/p/1",
             "https://im.example.org/chat/"]
    outcomes = [say(consumer, open_session, text) for text in texts]
    image = say(consumer, open_session, "https://cdn.other.com/u/13800138000.png", msg_type=2)

    assert [o.result.get("guard") for o in [*outcomes, image]] == [None] * 5
    assert list(Message.objects.order_by("seq").values_list("msg", flat=True))[-5:] == [
        *texts, "https://cdn.other.com/u/13800138000.png"]


def test_a_resend_of_a_flagged_message_stores_and_flags_nothing_new(open_session, consumer, say):
    first = say(consumer, open_session, CONTACT, client_msg_id="c-1")
    again = say(consumer, open_session, CONTACT, client_msg_id="c-1")

    assert again.result["msg_id"] == first.result["msg_id"]
    assert Message.objects.exclude(guard_kinds="").count() == 1
    assert not flagged_pushes(again.sent) and len(flagged_webhooks()) == 1


def test_without_a_webhook_url_nothing_is_queued_but_the_flag_and_push_remain(open_session, consumer, say, settings):
    settings.IM_WEBHOOK_URL = ""

    outcome = say(consumer, open_session, CONTACT)

    assert flagged_pushes(outcome.sent) and not flagged_webhooks()
    assert Message.objects.get(pk=outcome.result["msg_id"]).guard_kinds == "wechat"


def test_a_new_shop_flags_by_default(merchant):
    assert services.shop_create(name="New", owner=merchant).contact_guard == Mode.FLAG


def test_the_dashboard_counts_flagged_messages_today_and_in_all(open_session, consumer, say):
    say(consumer, open_session, CONTACT)
    say(consumer, open_session, "QQ 12345678")
    say(consumer, open_session, "thanks")

    data = reports.shop_dashboard(shop_ids=[open_session.pk], base_url=factories.BASE_URL)

    assert data["flagged"] == {"today": 2, "total": 2}
    assert reports.shop_dashboard(shop_ids=[], base_url=factories.BASE_URL)["flagged"] == {"today": 0, "total": 0}
