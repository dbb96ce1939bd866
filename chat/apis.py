"""Chat over HTTP (/api/v1/...): conversations, messages and groups.

Each API reads its input and runs the socket's handler or service, so the rules, the stored rows and
the pushes are the socket's own; replies are `{code, msg, result}` with the socket's result.
"""

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.views import APIView

from chat import cards, groups, handlers, ids, selectors
from chat.inputs import CLIENT_MSG_ID_CHARS
from chat.models import ChatType, Participant
from chat.payloads import message_result_from_row
from chat.protocol import read_bool, read_int_list, read_str
from imchat.api import caller_of, ok
from imchat.errors import bad_request
from imchat.inputs import QueryIntegerField, body_of, validated
from imchat.openapi import INT64_MAX, api
from imchat.throttling import SendThrottle

PAGE_DEFAULT = 50
PAGE_MAX = 200
CHAT_ID = OpenApiParameter("chat_id", str, OpenApiParameter.PATH,
                           description="`1_2` private, `g12` group, `3____7` shop 3 with user 7, `sys_7` notices")
ROLE_TYPE = serializers.ChoiceField(choices=["user", "service"], default="user",
                                    help_text="`service`: the shop side of a customer-service chat (agents)")


# --- Output shapes (for the schema; the dicts come from chat.payloads, as on the socket) ----------


class CardItemOut(serializers.Serializer):
    title = serializers.CharField(max_length=cards.TITLE_CHARS)
    quantity = serializers.IntegerField(min_value=1, max_value=cards.MAX_QUANTITY)
    price = serializers.CharField(help_text='decimal string, two decimals: "129.00"')


class CardOut(serializers.Serializer):
    """A product or order card the mall signed (ext), as stored and pushed: without `expires` and `sig`.

    product: id, title, price, image, link. order: id, status, total, items, link."""

    kind = serializers.ChoiceField(choices=list(cards.KINDS))
    id = serializers.CharField(max_length=64, help_text="the mall's product or order id")
    title = serializers.CharField(required=False, max_length=cards.TITLE_CHARS, help_text="product")
    price = serializers.CharField(required=False, help_text='product; decimal string, two decimals: "129.00"')
    image = serializers.URLField(required=False, max_length=cards.URL_CHARS, help_text="product; absolute http(s)")
    status = serializers.CharField(required=False, max_length=cards.STATUS_CHARS, help_text="order")
    total = serializers.CharField(required=False, help_text='order; decimal string, two decimals: "258.00"')
    items = CardItemOut(many=True, required=False, help_text=f"order; 1-{cards.MAX_ITEMS} items")
    link = serializers.URLField(max_length=cards.URL_CHARS, help_text="absolute http(s)")


class SignedCardIn(CardOut):
    """A card as the mall signed it (docs/PROTOCOL-EXT.md, "Product and order cards")."""

    expires = serializers.IntegerField(help_text="unix seconds, in the future, at most 7 days ahead")
    sig = serializers.CharField(min_length=64, max_length=64,
                                help_text='hex HMAC-SHA256(IM_MALL_API_KEY, "<kind>.<expires>.<canonical JSON of the '
                                          'other fields>")')


class MessageOut(serializers.Serializer):
    """A message as pushed with code 200 (PROTOCOL.md section 4, chat.sendMsg)."""

    nickname = serializers.CharField()
    avatar = serializers.URLField()
    id = serializers.IntegerField(required=False, help_text="sender uid; absent when an agent speaks for a shop")
    chat_id = serializers.CharField()
    chat_type = serializers.IntegerField()
    msg_type = serializers.IntegerField()
    msg = serializers.CharField()
    createtime = serializers.IntegerField()
    shop_id = serializers.IntegerField(required=False)
    service_nickname = serializers.CharField(required=False)
    service_avatar = serializers.URLField(required=False)
    msg_id = serializers.IntegerField()
    seq = serializers.IntegerField()
    from_uid = serializers.IntegerField()
    to_uid = serializers.IntegerField()
    client_msg_id = serializers.CharField(allow_null=True)
    guard = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="shop side of customer service only, when the contact guard flagged "
                                            "it: the kinds found (phone, wechat, qq, email, link)")
    card = CardOut(required=False, help_text="only on a card's message (`msg` is then its line of text)")


class SentOut(serializers.Serializer):
    msg_id = serializers.IntegerField()
    chat_id = serializers.CharField()
    seq = serializers.IntegerField()
    createtime = serializers.IntegerField()
    client_msg_id = serializers.CharField(allow_null=True)
    guard = serializers.CharField(required=False, help_text='"masked": the shop\'s contact guard hid a contact')
    msg = serializers.CharField(required=False, help_text="with guard or a card: the text as stored and delivered")
    card = CardOut(required=False, help_text="only for a card: what was stored")


class ConversationOut(serializers.Serializer):
    """A `user.recentChat` row."""

    id = serializers.IntegerField()
    uid = serializers.IntegerField()
    chat_id = serializers.CharField()
    shop_id = serializers.IntegerField()
    friend_uid = serializers.IntegerField()
    friend_name = serializers.CharField()
    friend_avatar = serializers.URLField()
    last_msg = serializers.CharField()
    last_uid = serializers.IntegerField()
    last_time = serializers.IntegerField()
    chat_type = serializers.IntegerField()
    msg_type = serializers.IntegerField()
    unread_count = serializers.IntegerField()


class ConversationListOut(serializers.Serializer):
    rows = ConversationOut(many=True)
    unread_count = serializers.IntegerField()


class ReadOut(serializers.Serializer):
    chat_id = serializers.CharField()
    seq = serializers.IntegerField(help_text="the latest seq now read")


class ChatIdOut(serializers.Serializer):
    chat_id = serializers.CharField()


class MessagePageOut(serializers.Serializer):
    chat_id = serializers.CharField()
    messages = MessageOut(many=True, help_text="ascending by seq")
    has_more = serializers.BooleanField(
        help_text="more messages lie further in the direction asked (older for `before` and the default "
                  "latest page, newer for `after`)")
    oldest_seq = serializers.IntegerField(allow_null=True, help_text="pass as `before` for the page before")
    newest_seq = serializers.IntegerField(allow_null=True, help_text="pass as `after` for the page after")


class GroupOut(serializers.Serializer):
    group_id = serializers.IntegerField()
    chat_id = serializers.CharField()
    name = serializers.CharField()


class GroupRowOut(GroupOut):
    role = serializers.CharField(help_text="owner, admin or member")


class MemberOut(serializers.Serializer):
    id = serializers.IntegerField()
    nickname = serializers.CharField()
    avatar = serializers.URLField()
    role = serializers.CharField(help_text="owner, admin or member")


class MembersOut(serializers.Serializer):
    group_id = serializers.IntegerField()
    members = MemberOut(many=True)


class GroupUidsOut(serializers.Serializer):
    group_id = serializers.IntegerField()
    uids = serializers.ListField(child=serializers.IntegerField())


class GroupMemberOut(serializers.Serializer):
    group_id = serializers.IntegerField()
    uid = serializers.IntegerField()
    role = serializers.CharField(required=False)
    muted = serializers.BooleanField(required=False)


class GroupIdOut(serializers.Serializer):
    group_id = serializers.IntegerField()
    name = serializers.CharField(required=False)


# --- Conversations -------------------------------------------------------------------------------


class ConversationListApi(APIView):
    """The conversation list with unread counts (the socket's `user.recentChat`)."""

    class ConversationFilterSerializer(serializers.Serializer):
        is_service = serializers.BooleanField(
            default=False, help_text="true: the customer-service conversations of the shops I answer for")
        shop_id = QueryIntegerField(required=False, min_value=1, max_value=INT64_MAX,
                                    help_text="with is_service: only this shop")

    @api(name="ConversationList", result=ConversationListOut, parameters=[ConversationFilterSerializer],
         tags=["conversations"])
    def get(self, request):
        filters = validated(self.ConversationFilterSerializer, request.query_params)
        return ok(handlers.call(caller_of(request), ("user", "recentchat"), filters))


class RoleInputSerializer(serializers.Serializer):
    role_type = ROLE_TYPE


class ConversationReadApi(APIView):
    """Mark a conversation read (unread count 0); the other side gets a 301 receipt."""

    @api(name="ConversationMarkRead", result=ReadOut, request=RoleInputSerializer, parameters=[CHAT_ID],
         tags=["conversations"])
    def post(self, request, chat_id: str):
        data = validated(RoleInputSerializer, body_of(request))
        return ok(handlers.call(caller_of(request), ("chat", "setchatread"), {"chat_id": chat_id, **data}))


class ConversationHideApi(APIView):
    """Hide a conversation from my list (soft delete; a new message brings it back)."""

    @api(name="ConversationHide", result=ChatIdOut, request=RoleInputSerializer, parameters=[CHAT_ID],
         tags=["conversations"])
    def post(self, request, chat_id: str):
        data = validated(RoleInputSerializer, body_of(request))
        handlers.call(caller_of(request), ("chat", "delchat"), {"chat_id": chat_id, **data})
        return ok({"chat_id": chat_id})


# --- Messages ------------------------------------------------------------------------------------


class SendInputSerializer(serializers.Serializer):
    """chat.sendMsg's content (PROTOCOL.md section 4); numeric strings are accepted as on the socket."""

    to_uid = serializers.IntegerField(required=False, min_value=0, max_value=INT64_MAX,
                                      help_text="private: the receiver; group: the group id; customer service: "
                                                "the shop id (consumer) or the consumer's id (agent)")
    chat_type = serializers.ChoiceField(choices=[1, 2, 4], help_text="1 private, 2 group, 4 customer service")
    msg_type = serializers.ChoiceField(choices=[1, 2], help_text="1 text, 2 image (an absolute URL from upload)")
    msg = serializers.CharField(max_length=5000, required=False, allow_blank=True,
                                help_text="required, unless a card is sent (the server writes its text)")
    card = SignedCardIn(required=False, help_text="private and customer-service chats: a card the mall signed")
    chat_id = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=64)
    shop_id = serializers.IntegerField(required=False, min_value=0, max_value=INT64_MAX)
    role_type = serializers.ChoiceField(choices=["user", "service"], required=False,
                                        help_text="customer service: `service` when an agent answers for the shop")
    client_msg_id = serializers.CharField(required=False, allow_null=True, max_length=CLIENT_MSG_ID_CHARS,
                                          help_text="resending the same id stores nothing new (idempotent)")


class ConversationSendSerializer(serializers.Serializer):
    msg_type = serializers.ChoiceField(choices=[1, 2], help_text="1 text, 2 image (an absolute URL from upload)")
    msg = serializers.CharField(max_length=5000, required=False, allow_blank=True,
                                help_text="required, unless a card is sent (the server writes its text)")
    card = SignedCardIn(required=False, help_text="private and customer-service chats: a card the mall signed")
    role_type = ROLE_TYPE
    client_msg_id = serializers.CharField(required=False, allow_null=True, max_length=CLIENT_MSG_ID_CHARS)


class MessageSendApi(APIView):
    """Send a message: the socket's chat.sendMsg, same rules, same pushes, same reply, and about the
    rate a user's sockets may send at (IM_API_SEND_RATE)."""

    throttle_classes = [SendThrottle]

    @api(name="MessageSend", result=SentOut, status=201, request=SendInputSerializer, tags=["messages"])
    def post(self, request):
        return ok(handlers.call(caller_of(request), ("chat", "sendmsg"), body_of(request)), 201)


class ConversationMessagesApi(APIView):
    """GET: history by seq cursor. POST: send into this conversation (as chat.sendMsg)."""

    def get_throttles(self):
        return [SendThrottle()] if self.request.method == "POST" else super().get_throttles()

    class MessagePageFilterSerializer(serializers.Serializer):
        before = QueryIntegerField(required=False, min_value=1, max_value=INT64_MAX,
                                   help_text="messages with a smaller seq (the page just before)")
        after = QueryIntegerField(required=False, min_value=0, max_value=INT64_MAX,
                                  help_text="messages with a larger seq (the page just after)")
        limit = QueryIntegerField(default=PAGE_DEFAULT, min_value=1, max_value=PAGE_MAX)
        role_type = ROLE_TYPE

        def validate(self, attrs):
            if "before" in attrs and "after" in attrs:
                raise serializers.ValidationError({"before": "give before or after, not both"})
            return attrs

    @api(name="MessageList", result=MessagePageOut, parameters=[CHAT_ID, MessagePageFilterSerializer],
         tags=["messages"])
    def get(self, request, chat_id: str):
        page = validated(self.MessagePageFilterSerializer, request.query_params)
        caller = caller_of(request)
        ids.parse_chat_id(chat_id)
        participant = selectors.record_participant(
            caller=caller, chat_id=chat_id, to_uid=None, chat_type=None,
            shop_side=handlers._shop_side(caller, page, chat_id),
        )
        messages, has_more = [], False
        if participant is not None:
            limit = page["limit"]
            visible = selectors.visible_messages(participant).select_related("conversation", "sender")
            if "after" in page:
                found = list(visible.filter(seq__gt=page["after"]).order_by("seq")[: limit + 1])
                has_more = len(found) > limit
                found = found[:limit]
            else:
                if "before" in page:
                    visible = visible.filter(seq__lt=page["before"])
                found = list(visible.order_by("-seq")[: limit + 1])
                has_more = len(found) > limit
                found = found[:limit][::-1]
            messages = selectors.with_guard_marks([message_result_from_row(message, caller.base_url)
                                                   for message in found], found, participant)
        return ok({
            "chat_id": chat_id,
            "messages": messages,
            "has_more": has_more,
            "oldest_seq": messages[0]["seq"] if messages else None,
            "newest_seq": messages[-1]["seq"] if messages else None,
        })

    @api(name="ConversationMessageSend", result=SentOut, status=201, request=ConversationSendSerializer,
         parameters=[CHAT_ID], tags=["messages"])
    def post(self, request, chat_id: str):
        body = body_of(request)
        ref = ids.parse_chat_id(chat_id)
        if ref.chat_type == ChatType.SYSTEM:
            content = {**body, "chat_type": ChatType.SYSTEM}  # refused by the handler, as on the socket
        else:
            content = {**body, "chat_id": chat_id, "chat_type": ref.chat_type, "to_uid": None, "shop_id": None}
        return ok(handlers.call(caller_of(request), ("chat", "sendmsg"), content), 201)


# --- Groups --------------------------------------------------------------------------------------


def _name(data) -> str:
    name = (read_str(data, "name", required=True, max_length=groups.NAME_CHARS) or "").strip()
    if not name:
        raise bad_request("name: required")
    return name


class GroupCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=groups.NAME_CHARS)
    uids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=INT64_MAX), required=False,
                                 help_text="the first members besides me")


class GroupRenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=groups.NAME_CHARS)


class GroupInviteSerializer(serializers.Serializer):
    uids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=INT64_MAX), min_length=1)


class GroupMemberChangeSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["admin", "member"], required=False, help_text="owner only")
    muted = serializers.BooleanField(required=False, help_text="owner or admin")


class GroupListApi(APIView):
    """GET: the groups I am in. POST {name, uids}: create one (I become its owner)."""

    @api(name="GroupList", result=GroupRowOut, many=True, tags=["groups"])
    def get(self, request):
        rows = (
            Participant.objects.filter(user=request.user, left_seq__isnull=True, conversation__chat_type=ChatType.GROUP)
            .select_related("conversation")
            .order_by("conversation_id")
        )
        return ok([{"group_id": row.conversation.group_id, "chat_id": row.conversation.chat_id,
                    "name": row.conversation.title, "role": row.role} for row in rows])

    @api(name="GroupCreate", result=GroupOut, status=201, request=GroupCreateSerializer, tags=["groups"])
    def post(self, request):
        data = body_of(request)
        group = groups.group_create(caller=caller_of(request), name=_name(data), uids=read_int_list(data, "uids"))
        return ok({"group_id": group.pk, "chat_id": ids.group_chat_id(group.pk), "name": group.name}, 201)


class GroupApi(APIView):
    """GET: members. PATCH {name}: rename. DELETE: dissolve (owner)."""

    @api(name="GroupGet", result=MembersOut, tags=["groups"])
    def get(self, request, group_id: int):
        return ok(groups.group_members(caller=caller_of(request), group_id=group_id))

    @api(name="GroupRename", result=GroupIdOut, request=GroupRenameSerializer,
         tags=["groups"])
    def patch(self, request, group_id: int):
        name = _name(body_of(request))
        groups.group_rename(caller=caller_of(request), group_id=group_id, name=name)
        return ok({"group_id": group_id, "name": name})

    @api(name="GroupDissolve", result=GroupIdOut, tags=["groups"])
    def delete(self, request, group_id: int):
        groups.group_dissolve(caller=caller_of(request), group_id=group_id)
        return ok({"group_id": group_id})


class GroupMembersApi(APIView):
    """GET: members. POST {uids}: invite."""

    @api(name="GroupMembers", result=MembersOut, tags=["groups"])
    def get(self, request, group_id: int):
        return ok(groups.group_members(caller=caller_of(request), group_id=group_id))

    @api(name="GroupInvite", result=GroupUidsOut, request=GroupInviteSerializer,
         tags=["groups"])
    def post(self, request, group_id: int):
        uids = read_int_list(body_of(request), "uids")
        if not uids:
            raise bad_request("uids: required")
        return ok({"group_id": group_id, "uids": groups.group_invite(caller=caller_of(request), group_id=group_id,
                                                                     uids=uids)})


class GroupMemberApi(APIView):
    """DELETE: leave (myself) or kick (someone else). PATCH {role} / {muted}: owner/admin changes."""

    @api(name="GroupMemberRemove", result=GroupMemberOut, tags=["groups"])
    def delete(self, request, group_id: int, uid: int):
        caller = caller_of(request)
        if uid == caller.uid:
            groups.group_leave(caller=caller, group_id=group_id)
        else:
            groups.group_kick(caller=caller, group_id=group_id, uid=uid)
        return ok({"group_id": group_id, "uid": uid})

    @api(name="GroupMemberChange", result=GroupMemberOut, request=GroupMemberChangeSerializer,
         tags=["groups"])
    def patch(self, request, group_id: int, uid: int):
        caller = caller_of(request)
        data = body_of(request)
        result = {"group_id": group_id, "uid": uid}
        if "role" in data:
            role = read_str(data, "role", required=True)
            groups.group_set_role(caller=caller, group_id=group_id, uid=uid, role=role)
            result["role"] = role
        if "muted" in data:
            muted = read_bool(data, "muted")
            groups.group_mute(caller=caller, group_id=group_id, uid=uid, muted=muted)
            result["muted"] = muted
        if len(result) == 2:
            raise bad_request("role or muted: required")
        return ok(result)
