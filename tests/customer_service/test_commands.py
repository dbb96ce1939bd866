"""The customer-service management commands, through call_command."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from customer_service import services
from customer_service.models import ServiceAgent, ServiceSession, Shop
from tests import factories


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


@pytest.fixture
def owner(db):
    return factories.make_user(username="owner")


# --- createshop ----------------------------------------------------------------------------------


def test_createshop_prints_the_new_shop_id_alone_on_the_last_line(owner):
    out, _ = run("createshop", "Tea House", "--owner", "owner")

    shop = Shop.objects.get(name="Tea House")
    assert last_line(out) == str(shop.pk)
    assert shop.owner == owner
    assert (shop.strategy, shop.logo) == ("least_busy", "")


def test_createshop_takes_the_malls_id_a_logo_and_a_strategy(owner):
    out, _ = run("createshop", "Bike Shop", "--owner", str(owner.pk), "--id", "42",
                 "--logo", "https://cdn.example.com/bike.png", "--strategy", "round_robin")

    assert last_line(out) == "42"
    shop = Shop.objects.get(pk=42)
    assert (shop.name, shop.logo, shop.strategy, shop.owner_id) == (
        "Bike Shop", "https://cdn.example.com/bike.png", "round_robin", owner.pk)


def test_createshop_accepts_the_random_strategy_and_an_offline_notice(owner):
    out, _ = run("createshop", "Dice", "--owner", "owner", "--strategy", "random", "--offline-notice", "Back at 9")

    shop = Shop.objects.get(pk=int(last_line(out)))
    assert (shop.strategy, shop.offline_notice) == ("random", "Back at 9")


def test_createshop_refuses_an_id_that_exists(owner):
    run("createshop", "First", "--owner", "owner", "--id", "7")

    with pytest.raises(CommandError, match="7"):
        run("createshop", "Second", "--owner", "owner", "--id", "7")
    assert Shop.objects.get(pk=7).name == "First"


def test_createshop_refuses_an_unknown_owner(db):
    with pytest.raises(CommandError):
        run("createshop", "Orphan", "--owner", "ghost")
    assert not Shop.objects.exists()


def test_createshop_refuses_an_unknown_strategy(owner):
    with pytest.raises(CommandError):
        run("createshop", "Odd", "--owner", "owner", "--strategy", "loudest")


# --- addagent and setagentstatus -----------------------------------------------------------------


@pytest.fixture
def shop(owner):
    out, _ = run("createshop", "Tea House", "--owner", "owner", "--id", "3")
    return Shop.objects.get(pk=int(last_line(out)))


def test_addagent_prints_the_agent_records_id_and_defaults_to_offline(shop):
    amy = factories.make_user(username="amy")

    out, err = run("addagent", str(shop.pk), "amy")

    agent = ServiceAgent.objects.get(shop=shop, user=amy)
    assert last_line(out) == str(agent.pk)
    assert (agent.status, agent.max_sessions) == ("offline", 10)
    assert "REDIS_URL" in err  # the in-memory layer cannot reach the server's sockets, and it says so


def test_addagent_takes_status_and_max_sessions_and_a_user_id(shop):
    amy = factories.make_user(username="amy")

    out, _ = run("addagent", str(shop.pk), str(amy.pk), "--status", "online", "--max-sessions", "3")

    agent = ServiceAgent.objects.get(pk=int(last_line(out)))
    assert (agent.user_id, agent.status, agent.max_sessions) == (amy.pk, "online", 3)


def test_addagent_again_updates_the_same_record(shop):
    factories.make_user(username="amy")
    first, _ = run("addagent", str(shop.pk), "amy")

    again, _ = run("addagent", str(shop.pk), "amy", "--status", "busy", "--max-sessions", "2")

    assert last_line(again) == last_line(first)
    agent = ServiceAgent.objects.get(pk=int(last_line(first)))
    assert (agent.status, agent.max_sessions) == ("busy", 2)
    assert ServiceAgent.objects.count() == 1


def test_addagent_refuses_an_unknown_shop_or_user(shop):
    factories.make_user(username="amy")

    with pytest.raises(CommandError, match="999"):
        run("addagent", "999", "amy")
    with pytest.raises(CommandError):
        run("addagent", str(shop.pk), "ghost")
    assert not ServiceAgent.objects.exists()


def test_addagent_online_takes_the_shops_queue_when_the_agent_is_connected(shop, connect):
    amy = factories.make_user(username="amy")
    consumer = factories.make_user(username="cora")
    services.consumer_message_send(caller=factories.caller_of(consumer), shop_id=shop.pk, msg_type=1, msg="hi",
                                   client_msg_id=None)
    connect(amy)

    run("addagent", str(shop.pk), "amy", "--status", "online")

    session = ServiceSession.objects.get(consumer=consumer)
    assert (session.state, session.agent_id) == ("open", amy.pk)


def test_setagentstatus_changes_the_status_for_routing(shop):
    amy = factories.make_user(username="amy")
    run("addagent", str(shop.pk), "amy")

    out, _ = run("setagentstatus", str(shop.pk), "amy", "online")

    assert ServiceAgent.objects.get(shop=shop, user=amy).status == "online"
    assert "online" in out

    run("setagentstatus", str(shop.pk), str(amy.pk), "busy")
    assert ServiceAgent.objects.get(shop=shop, user=amy).status == "busy"


def test_setagentstatus_refuses_a_user_who_is_not_an_agent_of_the_shop(shop):
    factories.make_user(username="amy")

    with pytest.raises(CommandError):
        run("setagentstatus", str(shop.pk), "amy", "online")


def test_setagentstatus_refuses_an_unknown_status(shop):
    factories.make_user(username="amy")
    run("addagent", str(shop.pk), "amy")

    with pytest.raises(CommandError):
        run("setagentstatus", str(shop.pk), "amy", "sleeping")


# --- seeddemo ------------------------------------------------------------------------------------


def test_seeddemo_refuses_to_make_published_passwords_without_debug(db, settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG=1"):
        run("seeddemo")

    assert not User.objects.filter(username="merchant").exists()


def test_seeddemo_creates_a_shop_with_two_online_agents_and_is_idempotent(db, settings):
    settings.DEBUG = True
    out, _ = run("seeddemo")

    counts = (User.objects.count(), Shop.objects.count(), ServiceAgent.objects.count())
    shop = Shop.objects.get(pk=1)  # the always-open demo shop (shop 2 has business hours)
    assert shop.owner.username == "merchant"
    assert shop.owner.is_staff
    assert sorted(shop.agents.values_list("user__username", "status")) == [("amy", "online"), ("ben", "online")]
    assert set(User.objects.values_list("username", flat=True)) >= {"alice", "bob", "merchant", "amy", "ben"}
    assert "alice" in out

    run("seeddemo")

    assert (User.objects.count(), Shop.objects.count(), ServiceAgent.objects.count()) == counts
    assert User.objects.get(username="alice").check_password("imchat-demo")


@pytest.mark.parametrize("identifier", ["²", "9" * 5000])
def test_a_user_given_as_something_that_only_looks_like_digits_is_no_such_user(db, identifier):
    with pytest.raises(CommandError, match="no user"):
        run("mintoken", identifier)
