"""GET /api/v1/search/messages/: the desk's search over HTTP, its attackers, its schema; and over a real socket."""

import pytest
import yaml
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.core.management import call_command

from customer_service import services
from tests import factories
from tests.customer_service.conftest import consumer_frame
from tests.factories import open_socket, request, synchronously

URL = "/api/v1/search/messages/"


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def desk(shop, amy, make_agent, connect):
    make_agent(shop, amy)
    connect(amy)
    return shop


@pytest.fixture
def rival(db):
    owner = factories.make_user(username="rex", nickname="Rex")
    return services.shop_create(name="Rival Teas", owner=owner)


def say(api, consumer, shop, msg):
    reply = api(consumer).post("/api/v1/messages/", consumer_frame(shop.pk, msg), format="json")
    assert reply.status_code == 201, reply.content
    return reply.json()["result"]


@pytest.mark.django_db
def test_an_agent_searches_over_http_with_the_sockets_result(desk, amy, consumer, api):
    sent = say(api, consumer, desk, "Can I get a refund for the teapot?")

    reply = api(amy).get(URL, {"q": "refund"})

    assert reply.status_code == 200
    result = reply.json()["result"]
    [hit] = result["hits"]
    assert (hit["msg_id"], hit["chat_id"], hit["uid"], hit["name"]) == (sent["msg_id"], sent["chat_id"], consumer.pk,
                                                                        "Cora")
    assert hit["snippet"] == "Can I get a refund for the teapot?" and hit["marks"] == [[12, 18]]
    assert (result["page"], result["page_size"], result["has_more"]) == (1, 20, False)


@pytest.mark.django_db
def test_chinese_is_searched_over_http(desk, amy, consumer, api):
    say(api, consumer, desk, "请问什么时候发货？")
    hits = api(amy).get(URL, {"q": "发货"}).json()["result"]["hits"]
    assert [hit["snippet"] for hit in hits] == ["请问什么时候发货？"]


@pytest.mark.django_db
def test_attackers_get_nothing_of_another_shop(desk, rival, amy, consumer, api):
    # given: the customer talks to both shops; amy serves only desk
    say(api, consumer, desk, "mine: green tea")
    say(api, consumer, rival, "theirs: green tea")
    # when: amy asks for the rival shop by id, the consumer and a stranger ask at all
    by_id = api(amy).get(URL, {"q": "green tea", "shop_id": rival.pk})
    by_consumer = api(consumer).get(URL, {"q": "green tea"})
    stranger = api(factories.make_user(username="mallory")).get(URL, {"q": "green tea"})
    mine = api(amy).get(URL, {"q": "green tea"}).json()["result"]["hits"]
    # then
    assert (by_id.status_code, by_id.json()["code"]) == (403, -403)
    assert (by_consumer.status_code, by_consumer.json()["code"]) == (403, -403)
    assert (stranger.status_code, stranger.json()["code"]) == (403, -403)
    assert [hit["snippet"] for hit in mine] == ["mine: green tea"]


@pytest.mark.django_db
def test_without_a_token_the_search_is_refused(desk):
    from rest_framework.test import APIClient

    reply = APIClient().get(URL, {"q": "tea"})
    assert reply.status_code == 401 and reply.json()["code"] == -200


@pytest.mark.django_db
@pytest.mark.parametrize(("params", "msg"), [
    ({}, "q: This field is required."),
    ({"q": ""}, "q: This field may not be blank."),
    ({"q": "x" * 101}, "q: Ensure this field has no more than 100 characters."),
    ({"q": "tea", "page": "0"}, "page: Ensure this value is greater than or equal to 1."),
    ({"q": "tea", "page": "51"}, "page: Ensure this value is less than or equal to 50."),
    ({"q": "tea", "page": "١"}, "page: A valid integer is required."),
    ({"q": "tea", "page_size": "1000"}, "page_size: Ensure this value is less than or equal to 50."),
    ({"q": "tea", "shop_id": "-1"}, "shop_id: Ensure this value is greater than or equal to 1."),
    ({"q": "tea", "shop_id": "99999999999999999999"},
     "shop_id: Ensure this value is less than or equal to 9223372036854775807."),
    ({"q": "order:a b"}, "q: order:<id> takes letters, digits, '.', '_' and '-' (1 to 64)"),
    ({"q": "tea\x00"}, "q: Null characters are not allowed."),
])
def test_bad_input_is_a_400_naming_the_field(desk, amy, api, params, msg):
    reply = api(amy).get(URL, params)
    assert reply.status_code == 400
    assert (reply.json()["code"], reply.json()["msg"]) == (0, msg)


@pytest.mark.django_db
def test_a_guessed_wildcard_does_not_dump_every_message(desk, amy, consumer, api):
    say(api, consumer, desk, "private address: 1 Main St")
    for q in ("%", "_", "%%", "\\", "%_%"):
        assert api(amy).get(URL, {"q": q}).json()["result"]["hits"] == [], q


@pytest.mark.django_db
def test_the_search_rate_limit_answers_429_with_retry_after(desk, amy, api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                          "search": "1/minute"}}
    client = api(amy)
    assert client.get(URL, {"q": "tea"}).status_code == 200
    refused = client.get(URL, {"q": "tea"})
    assert refused.status_code == 429 and refused.json()["code"] == -429 and int(refused["Retry-After"]) >= 1


@pytest.mark.django_db
def test_the_schema_names_the_search(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    operation = schema["paths"]["/api/v1/search/messages/"]["get"]
    assert operation["operationId"] == "messageSearch"
    assert {p["name"] for p in operation["parameters"]} == {"q", "shop_id", "page", "page_size"}
    assert {"SearchOut", "SearchHitOut", "SearchCustomerOut"} <= set(schema["components"]["schemas"])


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_service_search_over_a_real_socket(desk, amy, consumer, api):
    # given
    await database_sync_to_async(say)(api, consumer, desk, "退款 please, order 88")
    socket = await open_socket(amy)
    # when
    reply = await request(socket, "service", "search", {"q": "退款", "page": 1}, req_id="s1")
    refused = await request(socket, "service", "search", {"q": "退款", "shop_id": desk.pk + 1}, req_id="s2")
    await socket.disconnect()
    # then
    assert reply["code"] == 1 and reply["req_id"] == "s1"
    assert [hit["snippet"] for hit in reply["result"]["hits"]] == ["退款 please, order 88"]
    assert refused["code"] == -403
