"""The consumer a typical Django developer writes from the Channels tutorial, speaking our frames.

Token from the query string, one group per user, one ORM insert per message, then `group_send`.
Group chats (chat_type 2) go to one channel-layer group per chat group, joined on connect.
Deliberately naive: nothing here is tuned, that is the point of the baseline.
"""

import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from accounts.models import User
from accounts.tokens import InvalidToken, token_claims, token_user_id
from bench.naive.models import NaiveMessage
from chat.models import ChatType, Participant


def group_ids_of(user_id):
    return list(
        Participant.objects.filter(user_id=user_id, left_seq__isnull=True, conversation__chat_type=ChatType.GROUP)
        .values_list("conversation__group_id", flat=True)
    )


class NaiveChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        query = parse_qs(self.scope["query_string"].decode())
        try:
            user_id = token_user_id(token_claims(query.get("token", [""])[0]))
            self.user = await database_sync_to_async(User.objects.get)(pk=user_id)
        except (InvalidToken, User.DoesNotExist):
            await self.close()
            return
        self.groups_joined = [f"user_{self.user.pk}"]
        for group_id in await database_sync_to_async(group_ids_of)(self.user.pk):
            self.groups_joined.append(f"group_{group_id}")
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            data = json.loads(text_data)
        except (TypeError, ValueError):
            data = None
        if not isinstance(data, dict) or not data.get("class"):
            await self.send(text_data=json.dumps({"code": -1, "msg": "PONG", "result": None}))
            return
        if data.get("action", "").lower() != "sendmsg":
            await self.send(text_data=json.dumps({"code": 0, "msg": "unknown action", "result": None}))
            return
        content = data.get("content") or {}
        to_uid = int(content["to_uid"])
        chat_type = int(content.get("chat_type") or 1)
        message = await database_sync_to_async(NaiveMessage.objects.create)(
            sender_id=self.user.pk, receiver_id=to_uid, text=content["msg"]
        )
        await self.send(text_data=json.dumps({
            "code": 1, "msg": None,
            "result": {"msg_id": message.pk, "client_msg_id": content.get("client_msg_id")},
        }))
        group = f"group_{to_uid}" if chat_type == ChatType.GROUP else f"user_{to_uid}"
        await self.channel_layer.group_send(group, {
            "type": "chat.message",
            "result": {
                "nickname": self.user.nickname, "avatar": self.user.avatar, "id": self.user.pk,
                "chat_type": chat_type, "msg_type": content.get("msg_type", 1), "msg": content["msg"],
                "createtime": int(message.created_at.timestamp()), "msg_id": message.pk,
                "from_uid": self.user.pk, "to_uid": to_uid, "client_msg_id": content.get("client_msg_id"),
            },
        })

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"code": 200, "msg": None, "result": event["result"]}))
