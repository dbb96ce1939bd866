"""The desk's socket actions under hostile content: every reply is 1, 0, -403 or -404, never a crash."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import handlers
from chat.protocol import Envelope
from customer_service import desk
from customer_service.desk_handlers import HANDLERS
from tests import factories
from tests.customer_service.conftest import consumer_frame

pytestmark = pytest.mark.django_db

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False), st.text(max_size=40), st.just("a\x00b"), st.just("x" * 3000))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5),
                                                                                            inner, max_size=3),
                      max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_content_gets_a_clean_reply(shop, amy, consumer, make_agent, connect, data):
    make_agent(shop, amy)
    connect(amy)
    handlers.run(factories.caller_of(consumer), Envelope("chat", "sendMsg", consumer_frame(shop.pk)))
    if not shop.labels.exists():
        desk.label_create(shop=shop, name="vip")
    chat_id = f"{shop.pk}____{consumer.pk}"
    key = data.draw(st.sampled_from(sorted(HANDLERS)))
    content = data.draw(st.fixed_dictionaries({}, optional={
        "chat_id": st.one_of(st.just(chat_id), st.just(f"{shop.pk + 1}____{consumer.pk}"), values),
        "text": values, "add": values, "remove": values,
        "shop_id": st.one_of(st.just(shop.pk), values)}))
    user = data.draw(st.sampled_from([amy, consumer]))

    frame, _ = handlers.run(factories.caller_of(user), Envelope(key[0], key[1], content))

    assert frame["code"] in (1, 0, -403, -404), frame
