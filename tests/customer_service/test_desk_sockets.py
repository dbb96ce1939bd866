"""Notes and labels through real sockets (imchat.asgi.application): the shop's other agent sockets
hear 309 and 310, the acting socket only its reply, the consumer nothing at all."""

import pytest
from channels.db import database_sync_to_async

from customer_service import desk
from tests.customer_service.conftest import consumer_frame
from tests.factories import open_socket, request, synchronously

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.2


@synchronously
async def test_a_note_and_a_label_reach_the_shops_other_agent_sockets_only(shop, amy, ben, consumer, make_agent):
    # given: amy on a phone and a laptop, ben, and the consumer's open session with amy
    await database_sync_to_async(make_agent)(shop, amy)
    await database_sync_to_async(make_agent)(shop, ben)
    label = await database_sync_to_async(desk.label_create)(shop=shop, name="vip", color="#7c3aed")
    phone, laptop, bens, cora = (await open_socket(amy), await open_socket(amy), await open_socket(ben),
                                 await open_socket(consumer))
    assert (await request(cora, "chat", "sendMsg", consumer_frame(shop.pk, "hi")))["code"] == 1
    for socket, frames in ((cora, 1), (phone, 2), (laptop, 2)):
        for _ in range(frames):
            await socket.receive_json_from(timeout=2)
    chat_id = f"{shop.pk}____{consumer.pk}"

    # when amy notes and labels from her phone
    noted = await request(phone, "service", "note", {"chat_id": chat_id, "text": "wants a refund"}, req_id="n1")
    labelled = await request(phone, "service", "label", {"chat_id": chat_id, "add": [label.pk]}, req_id="l1")

    # then her laptop and ben hear 309 then 310; the phone has the replies; the consumer hears nothing
    assert (noted["code"], noted["req_id"], noted["result"]["text"]) == (1, "n1", "wants a refund")
    assert labelled["code"] == 1 and labelled["result"]["labels"] == [{"id": label.pk, "name": "vip",
                                                                       "color": "#7c3aed"}]
    for socket in (laptop, bens):
        note_push = await socket.receive_json_from(timeout=2)
        label_push = await socket.receive_json_from(timeout=2)
        assert note_push == {"code": 309, "msg": None, "result": {"chat_id": chat_id, "shop_id": shop.pk,
                                                                   "note": noted["result"]}}
        assert label_push == {"code": 310, "msg": None, "result": labelled["result"]}
    assert await phone.receive_nothing(timeout=QUIET)
    assert await cora.receive_nothing(timeout=QUIET)

    # and the consumer asking for the notes is refused
    refused = await request(cora, "service", "notes", {"chat_id": chat_id})
    assert refused["code"] == -403
    for socket in (phone, laptop, bens, cora):
        await socket.disconnect()
