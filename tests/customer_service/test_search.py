"""The desk's search (customer_service/search.py) over the socket's table, on SQLite: who sees what."""

import pytest
from django.core.cache import cache
from django.utils import timezone

from chat.models import Message
from customer_service import search, services
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()  # the search rate limit is counted in the cache
    yield
    cache.clear()


@pytest.fixture
def other_shop(db):
    owner = factories.make_user(username="olga", nickname="Olga")
    return services.shop_create(name="Coffee Corner", owner=owner)


@pytest.fixture
def desk(shop, amy, make_agent, connect):
    make_agent(shop, amy)
    connect(amy)
    return shop


def find(ask, user, q, **content):
    return ask(user, "service", "search", {"q": q, **content})


def test_an_agent_finds_a_customers_message_with_the_match_marked(desk, amy, consumer, say, ask):
    # given
    say(consumer, desk, "Where is my parcel? It was due on Monday")
    # when
    outcome = find(ask, amy, "PARCEL")
    # then
    assert outcome.code == 1
    [hit] = outcome.result["hits"]
    assert hit["chat_id"] == f"{desk.pk}____{consumer.pk}"
    assert (hit["shop_id"], hit["uid"], hit["name"], hit["from_customer"]) == (desk.pk, consumer.pk, "Cora", True)
    start, end = hit["marks"][0]
    assert hit["snippet"][start:end] == "parcel"
    assert hit["seq"] == 1 and hit["msg_id"] == Message.objects.get(msg__contains="parcel").pk
    assert outcome.result["has_more"] is False and outcome.result["shop_ids"] == [desk.pk]


def test_chinese_text_is_found_by_two_and_three_characters(desk, amy, consumer, say, ask):
    say(consumer, desk, "你好，我想申请退款，谢谢")
    for term in ("退款", "申请退款"):
        [hit] = find(ask, amy, term).result["hits"]
        start, end = hit["marks"][0]
        assert hit["snippet"][start:end] == term


def test_an_agent_never_sees_another_shops_messages(desk, other_shop, amy, consumer, say, ask):
    # given: the same customer wrote to both shops; amy serves only the first
    say(consumer, desk, "tea question")
    say(consumer, other_shop, "coffee question")
    # when / then
    hits = find(ask, amy, "question").result["hits"]
    assert [hit["shop_id"] for hit in hits] == [desk.pk]
    assert find(ask, amy, "coffee").result["hits"] == []
    refused = find(ask, amy, "coffee", shop_id=other_shop.pk)
    assert (refused.code, refused.frame["msg"]) == (-403, "not an agent of this shop")


def test_an_owner_of_two_shops_searches_both_or_picks_one(shop, merchant, consumer, say, ask):
    second = services.shop_create(name="Tea House 2", owner=merchant)
    say(consumer, shop, "order status please")
    say(consumer, second, "order status again")
    both = find(ask, merchant, "order status").result
    assert sorted(hit["shop_id"] for hit in both["hits"]) == sorted([shop.pk, second.pk])
    one = find(ask, merchant, "order status", shop_id=second.pk).result
    assert [hit["shop_id"] for hit in one["hits"]] == [second.pk] and one["shop_ids"] == [second.pk]


def test_a_consumer_or_anyone_not_serving_a_shop_is_refused(desk, consumer, alice, say, ask):
    say(consumer, desk, "hello shop")
    for user in (consumer, alice):
        outcome = find(ask, user, "hello")
        assert (outcome.code, outcome.result) == (-403, None)


def test_private_and_group_chats_are_never_returned(desk, amy, consumer, say, ask):
    # given: amy chats privately with the customer about the same word
    assert ask(amy, "chat", "sendMsg", factories.send_content(consumer.pk, "secret private refund talk")).code == 1
    group_id = ask(consumer, "group", "create", {"name": "friends", "uids": [amy.pk]}).result["group_id"]
    assert ask(consumer, "chat", "sendMsg", factories.send_content(group_id, "group refund talk", chat_type=2)).code == 1
    say(consumer, desk, "refund for order 7")
    # when
    hits = find(ask, amy, "refund").result["hits"]
    # then
    assert [hit["snippet"] for hit in hits] == ["refund for order 7"]


def test_recalled_messages_and_images_are_left_out(desk, amy, consumer, say, ask):
    kept = say(consumer, desk, "broken cup, photo follows").result
    gone = say(consumer, desk, "broken cup again").result
    Message.objects.filter(pk=gone["msg_id"]).update(recalled_at=timezone.now())
    say(consumer, desk, "https://cdn.example.com/broken-cup.png", msg_type=2)
    hits = find(ask, amy, "broken").result["hits"]
    assert [hit["msg_id"] for hit in hits] == [kept["msg_id"]]


def test_like_wildcards_and_backslashes_match_only_themselves(desk, amy, consumer, say, ask):
    say(consumer, desk, "discount 50% off")
    say(consumer, desk, "discount 50 off")
    say(consumer, desk, "file_name here")
    say(consumer, desk, "filexname here")
    say(consumer, desk, r"path C:\temp")
    assert [hit["snippet"] for hit in find(ask, amy, "50%").result["hits"]] == ["discount 50% off"]
    assert [hit["snippet"] for hit in find(ask, amy, "%").result["hits"]] == ["discount 50% off"]
    assert [hit["snippet"] for hit in find(ask, amy, "file_").result["hits"]] == ["file_name here"]
    assert [hit["snippet"] for hit in find(ask, amy, "\\").result["hits"]] == [r"path C:\temp"]


def test_results_are_paged_newest_first(desk, amy, consumer, say, ask):
    for n in range(5):
        say(consumer, desk, f"question number {n}")
    first = find(ask, amy, "question", page_size=2).result
    second = find(ask, amy, "question", page_size=2, page=2).result
    last = find(ask, amy, "question", page_size=2, page=3).result
    seen = [hit["snippet"] for page in (first, second, last) for hit in page["hits"]]
    assert seen == [f"question number {n}" for n in range(4, -1, -1)]
    assert (first["has_more"], second["has_more"], last["has_more"]) == (True, True, False)


def test_customers_are_found_by_name(desk, amy, consumer, consumer2, say, ask):
    say(consumer, desk, "hi")
    say(consumer2, desk, "hello")
    result = find(ask, amy, "cor").result
    assert [(c["uid"], c["name"], c["chat_id"]) for c in result["customers"]] == [
        (consumer.pk, "Cora", f"{desk.pk}____{consumer.pk}")]
    assert result["hits"] == []


def test_an_order_query_matches_the_id_as_a_whole(desk, amy, consumer, say, ask):
    say(consumer, desk, "[Order 2024-001] Green tea x2, 36.00")
    say(consumer, desk, "[Order 2024-0012] Black tea x1, 18.00")
    plain = find(ask, amy, "2024-001").result
    assert len(plain["hits"]) == 2
    exact = find(ask, amy, "order: 2024-001").result
    assert [hit["snippet"] for hit in exact["hits"]] == ["[Order 2024-001] Green tea x2, 36.00"]
    assert (exact["q"], exact["order_id"], exact["customers"]) == ("order:2024-001", "2024-001", [])


@pytest.mark.parametrize(("content", "msg"), [
    ({}, "q: required"),
    ({"q": "   "}, "q: required"),
    ({"q": "x" * 101}, "q: at most 100 characters"),
    ({"q": ["tea"]}, "q: must be a string"),
    ({"q": "tea\x00"}, "q: must not contain NUL characters"),
    ({"q": "order:<script>"}, "q: order:<id> takes letters, digits, '.', '_' and '-' (1 to 64)"),
    ({"q": "tea", "page": 0}, "page: out of range"),
    ({"q": "tea", "page": 51}, "page: 1 to 50"),
    ({"q": "tea", "page": "2; drop"}, "page: must be an integer"),
    ({"q": "tea", "page_size": 51}, "page_size: 1 to 50"),
    ({"q": "tea", "shop_id": "x"}, "shop_id: must be an integer"),
])
def test_bad_input_is_code_0_naming_the_field(desk, amy, ask, content, msg):
    outcome = ask(amy, "service", "search", content)
    assert (outcome.code, outcome.frame["msg"]) == (0, msg)


def test_the_query_is_trimmed_and_a_snippet_of_a_long_message_is_cut(desk, amy, consumer, say, ask):
    say(consumer, desk, "a" * 300 + " needle " + "b" * 300)
    result = find(ask, amy, "  needle \n").result
    [hit] = result["hits"]
    assert result["q"] == "needle"
    assert hit["snippet"].startswith("…") and hit["snippet"].endswith("…")
    assert len(hit["snippet"]) == search.SNIPPET_CHARS + 2
    start, end = hit["marks"][0]
    assert hit["snippet"][start:end] == "needle"


def test_searches_past_the_rate_are_refused(desk, amy, ask, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                          "search": "2/minute"}}
    assert [find(ask, amy, "tea").code for _ in range(3)] == [1, 1, -429]


def test_snippet_offsets_are_code_points_and_text_stays_text():
    text, marks = search.snippet("<b>😀 Refund</b> please", "refund")
    assert text == "<b>😀 Refund</b> please"
    assert [text[start:end] for start, end in marks] == ["Refund"]


def test_a_term_too_short_for_trigrams_searches_only_the_newest_messages(desk, amy, consumer, say, ask, settings):
    # given: the window holds the shop's two newest messages
    settings.IM_SEARCH_SHORT_WINDOW = 2
    say(consumer, desk, "退款 one, long ago")
    say(consumer, desk, "退款 two")
    say(consumer, desk, "退款 three")
    # when
    short = find(ask, amy, "退款").result
    longer = find(ask, amy, "long ago").result
    # then: the short term sees the window; a term with three word characters in a row, everything
    assert ([hit["snippet"] for hit in short["hits"]], short["recent_only"]) == (["退款 three", "退款 two"], True)
    assert ([hit["snippet"] for hit in longer["hits"]], longer["recent_only"]) == (["退款 one, long ago"], False)


def test_customers_of_another_shop_are_not_found_by_name(desk, other_shop, amy, consumer2, say, ask):
    say(consumer2, other_shop, "hello coffee")
    assert find(ask, amy, "dan").result["customers"] == []
