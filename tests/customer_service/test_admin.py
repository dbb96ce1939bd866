"""The merchant's admin: a staff shop owner sees and manages only their own shop (Django test Client)."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import user_create
from chat import realtime
from chat.models import Conversation, Message
from customer_service import services
from customer_service.models import ServiceAgent, ServiceSession
from tests import factories

PASSWORD = factories.PASSWORD
# The business-hours part of the shop's change form (tests/customer_service/test_hours_admin.py) and its
# offline-notification window, left as they are.
SHOP_HOURS_UNCHANGED = {
    "offline_notify_minutes": "10", "timezone": "UTC", "greeting": "", "out_of_hours_message": "closed",
    **{f"{prefix}-{field}": value for prefix in ("hours", "closed_days")
       for field, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"), ("MIN_NUM_FORMS", "0"),
                            ("MAX_NUM_FORMS", "1000"))},
}
XSS = "<script>alert(1)</script>"


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def send_to_shop(consumer, shop, msg: str):
    """A consumer writes to a shop, through the service the socket uses."""
    return services.consumer_message_send(caller=factories.caller_of(consumer), shop_id=shop.pk, msg_type=1, msg=msg,
                                          client_msg_id=None)


@pytest.fixture
def merchant_a(db):
    # A staff user with no Django model permissions at all: only shop ownership opens the admin.
    return user_create(username="merchanta", nickname="Merchant A", password=PASSWORD, is_staff=True)


@pytest.fixture
def merchant_b(db):
    return user_create(username="merchantb", nickname="Merchant B", password=PASSWORD, is_staff=True)


@pytest.fixture
def shop_a(merchant_a):
    return services.shop_create(name="Alpha Teas", owner=merchant_a)


@pytest.fixture
def shop_b(merchant_b):
    return services.shop_create(name="Bravo Bikes", owner=merchant_b)


@pytest.fixture
def world(shop_a, shop_b, make_agent):
    """Each shop with an agent, a customer, a session and a message."""
    agent_a = factories.make_user(username="annaagent", nickname="Anna Agent")
    agent_b = factories.make_user(username="borisagent", nickname="Boris Agent")
    customer_a = factories.make_user(username="cora", nickname="Cora Customer")
    customer_b = factories.make_user(username="zed", nickname="Zed Customer")
    record_a = make_agent(shop_a, agent_a, status=ServiceAgent.Status.OFFLINE)
    record_b = make_agent(shop_b, agent_b, status=ServiceAgent.Status.OFFLINE)
    send_to_shop(customer_a, shop_a, "alpha question about oolong")
    send_to_shop(customer_b, shop_b, "bravo question about brakes")
    return {
        "agent_a": record_a, "agent_b": record_b, "customer_a": customer_a, "customer_b": customer_b,
        "session_a": ServiceSession.objects.get(shop=shop_a), "session_b": ServiceSession.objects.get(shop=shop_b),
        "message_a": Message.objects.get(msg="alpha question about oolong"),
        "message_b": Message.objects.get(msg="bravo question about brakes"),
    }


@pytest.fixture
def merchant_client(merchant_a, shop_a) -> Client:
    client = Client()
    response = client.post(url("login"), {"username": "merchanta", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.fixture
def superuser_client(db) -> Client:
    root = user_create(username="root", password=PASSWORD, is_staff=True)
    root.is_superuser = True
    root.save(update_fields=["is_superuser"])
    client = Client()
    client.force_login(root)
    return client


def html(response) -> str:
    return response.content.decode()


# --- What a merchant sees ------------------------------------------------------------------------


def test_a_staff_merchant_with_no_model_permissions_can_open_the_admin(merchant_client, world):
    response = merchant_client.get("/admin/")

    assert response.status_code == 200
    page = html(response)
    assert url("customer_service_serviceagent_changelist") in page
    assert url("customer_service_servicesession_changelist") in page
    assert url("chat_message_changelist") in page
    assert url("accounts_user_changelist") not in page


def test_a_staff_user_who_owns_no_shop_sees_none_of_it(world):
    client = Client()
    client.force_login(user_create(username="stafferx", password=PASSWORD, is_staff=True))

    assert client.get(url("customer_service_serviceagent_changelist")).status_code == 403
    assert client.get(url("chat_message_changelist")).status_code == 403


def test_a_merchant_sees_only_their_shops_agents(merchant_client, world):
    response = merchant_client.get(url("customer_service_serviceagent_changelist"))

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [world["agent_a"]]
    assert "Anna Agent" in html(response)
    assert "Boris Agent" not in html(response)


def test_a_merchant_sees_only_their_shops_sessions(merchant_client, world):
    response = merchant_client.get(url("customer_service_servicesession_changelist"))

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [world["session_a"]]
    assert "Cora Customer" in html(response)
    assert "Zed Customer" not in html(response)


def test_a_merchant_sees_only_their_shops_messages_and_conversations(merchant_client, world):
    messages = merchant_client.get(url("chat_message_changelist"))
    conversations = merchant_client.get(url("chat_conversation_changelist"))

    assert messages.status_code == conversations.status_code == 200
    assert set(messages.context["cl"].result_list) == set(Message.objects.filter(shop_id=world["session_a"].shop_id))
    assert "alpha question about oolong" in html(messages)
    assert "bravo question about brakes" not in html(messages)
    assert [c.chat_id for c in conversations.context["cl"].result_list] == [world["session_a"].conversation.chat_id]


def test_the_shop_filter_offers_only_the_merchants_own_shops(merchant_client, world):
    for name in ("customer_service_serviceagent_changelist", "customer_service_servicesession_changelist"):
        page = html(merchant_client.get(url(name)))

        assert "Alpha Teas" in page
        assert "Bravo Bikes" not in page, f"{name} names another merchant's shop"


def test_another_shops_agent_session_message_and_shop_are_refused_by_url(merchant_client, world, shop_b):
    refused = [
        url("customer_service_serviceagent_change", world["agent_b"].pk),
        url("customer_service_servicesession_change", world["session_b"].pk),
        url("chat_message_change", world["message_b"].pk),
        url("customer_service_shop_change", shop_b.pk),
    ]
    for address in refused:
        response = merchant_client.get(address)

        assert response.status_code == 302, address
        assert response["Location"] == url("index"), address

    own = merchant_client.get(url("customer_service_servicesession_change", world["session_a"].pk))
    assert own.status_code == 200
    assert "Cora Customer" in html(own)


def test_a_merchant_cannot_change_another_shops_agent_by_posting_to_its_url(merchant_client, world, shop_b):
    agent_b = world["agent_b"]

    merchant_client.post(url("customer_service_serviceagent_change", agent_b.pk),
                         {"shop": shop_b.pk, "status": "online", "max_sessions": 99})

    agent_b.refresh_from_db()
    assert (agent_b.status, agent_b.max_sessions) == ("offline", 10)


# --- Managing agents -----------------------------------------------------------------------------


def test_the_add_agent_form_offers_only_the_merchants_shops(merchant_client, world, shop_a, shop_b):
    response = merchant_client.get(url("customer_service_serviceagent_add"))

    assert response.status_code == 200
    choices = list(response.context["adminform"].form.fields["shop"].queryset)
    assert choices == [shop_a]


def test_a_merchant_cannot_add_an_agent_to_another_shop(merchant_client, world, shop_b):
    factories.make_user(username="dave")

    response = merchant_client.post(url("customer_service_serviceagent_add"),
                                    {"shop": shop_b.pk, "username": "dave", "status": "online", "max_sessions": 5})

    assert response.status_code == 200
    assert "shop" in response.context["adminform"].form.errors
    assert not ServiceAgent.objects.filter(user__username="dave").exists()


def test_a_merchant_adds_an_agent_by_username(merchant_client, world, shop_a):
    dave = factories.make_user(username="dave", nickname="Dave")

    response = merchant_client.post(url("customer_service_serviceagent_add"),
                                    {"shop": shop_a.pk, "username": "dave", "status": "busy", "max_sessions": 3})

    assert response.status_code == 302
    agent = ServiceAgent.objects.get(shop=shop_a, user=dave)
    assert (agent.status, agent.max_sessions) == ("busy", 3)


def test_adding_an_unknown_username_is_a_form_error(merchant_client, world, shop_a):
    response = merchant_client.post(url("customer_service_serviceagent_add"),
                                    {"shop": shop_a.pk, "username": "nobody", "status": "online", "max_sessions": 3})

    assert response.status_code == 200
    assert "username" in response.context["adminform"].form.errors
    assert ServiceAgent.objects.filter(shop=shop_a).count() == 1


def changelist_post(client, rows: dict[int, dict]) -> object:
    """Save the agents changelist's list_editable columns: {agent pk: {field: value}} for every row shown."""
    page = client.get(url("customer_service_serviceagent_changelist"))
    shown = list(page.context["cl"].result_list)
    data = {"form-TOTAL_FORMS": len(shown), "form-INITIAL_FORMS": len(shown), "form-MIN_NUM_FORMS": 0,
            "form-MAX_NUM_FORMS": 1000, "_save": "Save"}
    for index, agent in enumerate(shown):
        values = {"status": agent.status, "max_sessions": agent.max_sessions, **rows.get(agent.pk, {})}
        data[f"form-{index}-id"] = agent.pk
        for name, value in values.items():
            data[f"form-{index}-{name}"] = value
    return client.post(url("customer_service_serviceagent_changelist"), data)


def test_setting_an_agent_online_in_the_list_takes_effect_for_routing_at_once(merchant_client, world, connect):
    # given: the agent has a live socket but is offline; the shop's customer waits in the queue
    agent_a = world["agent_a"]
    connect(agent_a.user)
    assert world["session_a"].state == "queued"

    # when
    response = changelist_post(merchant_client, {agent_a.pk: {"status": "online"}})

    # then
    assert response.status_code == 302
    agent_a.refresh_from_db()
    assert agent_a.status == "online"
    world["session_a"].refresh_from_db()
    assert (world["session_a"].state, world["session_a"].agent_id) == ("open", agent_a.user_id)


def test_editing_max_sessions_in_the_list_and_in_the_form_is_saved(merchant_client, world):
    agent_a = world["agent_a"]

    assert changelist_post(merchant_client, {agent_a.pk: {"max_sessions": 4}}).status_code == 302
    agent_a.refresh_from_db()
    assert agent_a.max_sessions == 4

    response = merchant_client.post(url("customer_service_serviceagent_change", agent_a.pk),
                                    {"shop": agent_a.shop_id, "status": "offline", "max_sessions": 7})
    assert response.status_code == 302
    agent_a.refresh_from_db()
    assert (agent_a.max_sessions, agent_a.user.username) == (7, "annaagent")


def test_raising_max_sessions_in_the_admin_lets_a_waiting_customer_in(merchant_client, world, shop_a, connect):
    # given: the agent is online and connected but full (one session, room for one); another customer waits
    agent_a = world["agent_a"]
    connect(agent_a.user)
    services.agent_set_status(user=agent_a.user, status="online", shop_id=shop_a.pk)
    ServiceAgent.objects.filter(pk=agent_a.pk).update(max_sessions=1)
    latecomer = factories.make_user(username="latecomer")
    send_to_shop(latecomer, shop_a, "me too")
    waiting = ServiceSession.objects.get(consumer=latecomer)
    assert waiting.state == "queued"

    # when
    changelist_post(merchant_client, {agent_a.pk: {"status": "online", "max_sessions": 2}})

    # then: the agent is now available (PROTOCOL.md 5), so the queue moves
    waiting.refresh_from_db()
    assert (waiting.state, waiting.agent_id) == ("open", agent_a.user_id)


def test_the_make_online_action_drains_the_queue(merchant_client, world, connect):
    agent_a = world["agent_a"]
    connect(agent_a.user)

    response = merchant_client.post(url("customer_service_serviceagent_changelist"),
                                    {"action": "make_online", "_selected_action": [agent_a.pk]})

    assert response.status_code == 302
    agent_a.refresh_from_db()
    assert agent_a.status == "online"
    world["session_a"].refresh_from_db()
    assert (world["session_a"].state, world["session_a"].agent_id) == ("open", agent_a.user_id)


def test_the_make_offline_action_hands_the_sessions_to_another_agent(merchant_client, world, shop_a, make_agent,
                                                                      connect):
    # given: the agent serves the customer; a colleague is online and connected
    agent_a = world["agent_a"]
    colleague = factories.make_user(username="colleague")
    connect(agent_a.user)
    connect(colleague)
    services.agent_set_status(user=agent_a.user, status="online", shop_id=shop_a.pk)
    make_agent(shop_a, colleague)
    assert ServiceSession.objects.get(pk=world["session_a"].pk).agent_id == agent_a.user_id

    # when
    response = merchant_client.post(url("customer_service_serviceagent_changelist"),
                                    {"action": "make_offline", "_selected_action": [agent_a.pk]})

    # then
    assert response.status_code == 302
    agent_a.refresh_from_db()
    assert agent_a.status == "offline"
    assert ServiceSession.objects.get(pk=world["session_a"].pk).agent_id == colleague.pk


def test_a_bulk_action_ignores_another_shops_agents_slipped_into_the_selection(merchant_client, world):
    agent_b = world["agent_b"]

    merchant_client.post(url("customer_service_serviceagent_changelist"),
                         {"action": "make_online", "_selected_action": [world["agent_a"].pk, agent_b.pk]})

    agent_b.refresh_from_db()
    assert agent_b.status == "offline"


# --- Messages are read-only; the superuser sees all ----------------------------------------------


def test_messages_are_read_only_for_a_merchant(merchant_client, world):
    message = world["message_a"]
    change = url("chat_message_change", message.pk)

    view = merchant_client.get(change)
    assert view.status_code == 200
    assert 'name="_save"' not in html(view)

    assert merchant_client.post(change, {"msg": "rewritten"}).status_code == 403
    assert merchant_client.get(url("chat_message_add")).status_code == 403
    assert merchant_client.post(url("chat_message_delete", message.pk), {"post": "yes"}).status_code == 403
    message.refresh_from_db()
    assert message.msg == "alpha question about oolong"


def test_sessions_are_read_only_for_a_merchant(merchant_client, world):
    session = world["session_a"]

    assert merchant_client.get(url("customer_service_servicesession_add")).status_code == 403
    assert merchant_client.post(url("customer_service_servicesession_change", session.pk),
                                {"state": "closed"}).status_code == 403
    session.refresh_from_db()
    assert session.state == "queued"


def test_a_superuser_sees_every_shops_agents_sessions_and_messages(superuser_client, world):
    agents = superuser_client.get(url("customer_service_serviceagent_changelist"))
    sessions = superuser_client.get(url("customer_service_servicesession_changelist"))
    messages = superuser_client.get(url("chat_message_changelist"))

    assert set(agents.context["cl"].result_list) == {world["agent_a"], world["agent_b"]}
    assert set(sessions.context["cl"].result_list) == {world["session_a"], world["session_b"]}
    assert {world["message_a"], world["message_b"]} <= set(messages.context["cl"].result_list)
    assert superuser_client.get(url("customer_service_serviceagent_change", world["agent_b"].pk)).status_code == 200


def test_an_owner_changed_in_the_admin_hands_over_the_shops_push_group_unless_the_old_one_is_an_agent(
        superuser_client, world, shop_a, merchant_a, merchant_b, make_agent, django_capture_on_commit_callbacks):
    group = f"shop.{shop_a.pk}.agents"

    def hand_over(to) -> set[tuple[str, str | None, str | None]]:
        """Post the shop's change form with a new owner; the (group, join, leave) of the pushes it commits."""
        with django_capture_on_commit_callbacks() as callbacks:
            response = superuser_client.post(url("customer_service_shop_change", shop_a.pk), {
                "name": shop_a.name, "logo": "", "strategy": "least_busy", "offline_notice": "away",
                "contact_guard": "flag", "owner": to.pk, **SHOP_HOURS_UNCHANGED})
        assert response.status_code == 302, html(response)[:2000]
        with realtime.collecting() as pushes:
            for callback in callbacks:
                callback()
        return {(push.group, push.join, push.leave) for push in pushes if push.join or push.leave}

    # when merchant A's shop goes to merchant B: B's open sockets join the shop's group, A's leave it
    assert hand_over(merchant_b) == {(f"user.{merchant_b.pk}", group, None), (f"user.{merchant_a.pk}", None, group)}

    # and when it comes back while B is also an agent of it, B's sockets stay
    make_agent(shop_a, merchant_b)
    assert hand_over(merchant_a) == {(f"user.{merchant_a.pk}", group, None)}


def test_a_script_in_a_message_is_shown_escaped(merchant_client, world, shop_a):
    send_to_shop(world["customer_a"], shop_a, XSS)

    pages = [
        merchant_client.get(url("chat_message_changelist")),
        merchant_client.get(url("chat_conversation_changelist")),
        merchant_client.get(url("chat_message_change", Message.objects.get(msg=XSS).pk)),
    ]

    for response in pages:
        page = html(response)
        assert response.status_code == 200
        assert XSS not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert Conversation.objects.get(shop_id=shop_a.pk).last_msg == XSS


@pytest.mark.parametrize("identifier", ["²", "٣", "9" * 5000])
def test_an_agent_id_that_is_not_ascii_digits_is_a_form_error_not_a_500(merchant_client, world, shop_a, identifier):
    response = merchant_client.post(url("customer_service_serviceagent_add"),
                                    {"shop": shop_a.pk, "username": identifier, "status": "online", "max_sessions": 3})

    assert response.status_code == 200
    assert "username" in response.context["adminform"].form.errors
