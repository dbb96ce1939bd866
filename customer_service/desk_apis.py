"""The desk over HTTP: a shop's labels and canned replies (the owner manages, agents read), and the
private notes and labels of a session (its shop's agents and owner)."""

from datetime import UTC, datetime, timedelta

from rest_framework import serializers
from rest_framework.views import APIView

from customer_service import canned, desk, reports
from customer_service.apis import owned_shop, served_shop
from customer_service.models import QuickReply, Shop
from imchat.api import ok
from imchat.errors import bad_request, not_found
from imchat.inputs import QueryIntegerField, body_of, validated
from imchat.openapi import api

REPORT_DAYS = 30
REPORT_MAX_DAYS = 366
LAST_UNIX_DAY = 253402214400  # 9999-12-31: later ones are no datetime


class LabelOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    color = serializers.CharField(help_text="#rrggbb")


class LabelInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=desk.LABEL_NAME_CHARS, help_text="unique in the shop")
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False, help_text="#rrggbb")


class LabelChangeSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=desk.LABEL_NAME_CHARS, required=False)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)


class ShopLabelListApi(APIView):
    """GET: the shop's labels (agents and owner). POST: a new label (owner)."""

    @api(name="ShopLabelList", result=LabelOut, many=True, tags=["desk"])
    def get(self, request, shop_id: int):
        served_shop(request, shop_id)
        return ok([desk.label_row(label) for label in Shop.objects.get(pk=shop_id).labels.order_by("name", "pk")])

    @api(name="ShopLabelCreate", result=LabelOut, status=201, request=LabelInputSerializer, tags=["desk"])
    def post(self, request, shop_id: int):
        shop = owned_shop(request, shop_id)
        data = validated(LabelInputSerializer, body_of(request))
        return ok(desk.label_row(desk.label_create(shop=shop, name=data["name"], color=data.get("color"))), 201)


class ShopLabelApi(APIView):
    """PATCH: rename or recolour a label. DELETE: remove it from the shop and its sessions (owner)."""

    @api(name="ShopLabelChange", result=LabelOut, request=LabelChangeSerializer, tags=["desk"])
    def patch(self, request, shop_id: int, label_id: int):
        shop = owned_shop(request, shop_id)
        data = validated(LabelChangeSerializer, body_of(request))
        if not data:
            raise bad_request("name or color: required")
        label = desk.label_of_shop(shop.pk, label_id)
        return ok(desk.label_row(desk.label_update(label=label, **data)))

    @api(name="ShopLabelDelete", result=LabelOut, tags=["desk"])
    def delete(self, request, shop_id: int, label_id: int):
        shop = owned_shop(request, shop_id)
        label = desk.label_of_shop(shop.pk, label_id)
        return ok(desk.label_delete(label=label))


class LabelReportApi(APIView):
    """Sessions begun in a period, counted per label of the shop (owner)."""

    class PeriodSerializer(serializers.Serializer):
        since = QueryIntegerField(required=False, min_value=0, max_value=LAST_UNIX_DAY,
                                  help_text=f"unix seconds; default {REPORT_DAYS} days before `until`")
        until = QueryIntegerField(required=False, min_value=0, max_value=LAST_UNIX_DAY,
                                  help_text="unix seconds; default now")

    class LabelCountOut(serializers.Serializer):
        shop_id = serializers.IntegerField()
        label_id = serializers.IntegerField()
        name = serializers.CharField()
        color = serializers.CharField()
        sessions = serializers.IntegerField(help_text="sessions begun in the period that carry the label")

    @api(name="ShopLabelReport", result=LabelCountOut, many=True, parameters=[PeriodSerializer], tags=["desk"])
    def get(self, request, shop_id: int):
        shop = owned_shop(request, shop_id)
        period = validated(self.PeriodSerializer, request.query_params)
        until = datetime.fromtimestamp(period["until"], UTC) if "until" in period else datetime.now(UTC)
        since = datetime.fromtimestamp(period["since"], UTC) if "since" in period else until - timedelta(
            days=REPORT_DAYS)
        if since >= until or until - since > timedelta(days=REPORT_MAX_DAYS):
            raise bad_request(f"since: must be before until, at most {REPORT_MAX_DAYS} days before")
        return ok(reports.sessions_per_label(shop_ids=[shop.pk], since=since, until=until))


class NoteOut(serializers.Serializer):
    id = serializers.IntegerField()
    session_id = serializers.IntegerField()
    author_uid = serializers.IntegerField()
    author_name = serializers.CharField()
    text = serializers.CharField()
    createtime = serializers.IntegerField(help_text="unix seconds")


class NoteInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=desk.NOTE_MAX_CHARS)


class SessionNoteListApi(APIView):
    """A session's private notes, oldest first; POST adds one (the shop's agents and owner; the
    consumer never sees them)."""

    @api(name="SessionNoteList", result=NoteOut, many=True, tags=["desk"])
    def get(self, request, session_id: int):
        session = desk.session_for_shop_side(request.user, session_id)
        return ok(desk.notes_of(session_id=session.pk))

    @api(name="SessionNoteAdd", result=NoteOut, status=201, request=NoteInputSerializer, tags=["desk"])
    def post(self, request, session_id: int):
        session = desk.session_for_shop_side(request.user, session_id)
        data = validated(NoteInputSerializer, body_of(request))
        return ok(desk.note_add(author=request.user, session=session, text=data["text"]), 201)


class SessionLabelsOut(serializers.Serializer):
    chat_id = serializers.CharField()
    shop_id = serializers.IntegerField()
    session_id = serializers.IntegerField()
    labels = LabelOut(many=True)


class SessionLabelsChangeSerializer(serializers.Serializer):
    add = serializers.ListField(child=serializers.JSONField(), required=False, max_length=desk.LABELS_PER_CHANGE,
                                help_text="label ids (numbers) or names (strings) of the session's shop")
    remove = serializers.ListField(child=serializers.JSONField(), required=False,
                                   max_length=desk.LABELS_PER_CHANGE)


class SessionLabelsApi(APIView):
    """GET: a session's labels. PATCH {add, remove}: change them (the shop's agents and owner)."""

    @api(name="SessionLabels", result=SessionLabelsOut, tags=["desk"])
    def get(self, request, session_id: int):
        session = desk.session_for_shop_side(request.user, session_id)
        return ok({"chat_id": session.conversation.chat_id, "shop_id": session.shop_id, "session_id": session.pk,
                   "labels": desk.session_labels(session.pk)})

    @api(name="SessionLabelsChange", result=SessionLabelsOut, request=SessionLabelsChangeSerializer, tags=["desk"])
    def patch(self, request, session_id: int):
        session = desk.session_for_shop_side(request.user, session_id)
        data = validated(SessionLabelsChangeSerializer, body_of(request))
        return ok(desk.session_labels_change(session=session, add=data.get("add"), remove=data.get("remove")))


class CannedReplyOut(serializers.Serializer):
    id = serializers.IntegerField()
    shop_id = serializers.IntegerField()
    shortcut = serializers.CharField(help_text='typed as /shortcut; "" for none')
    title = serializers.CharField()
    text = serializers.CharField(help_text="as written: may say {customer_name}, {shop_name}, {agent_name}")
    order = serializers.IntegerField()


class CannedReplyInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=canned.TITLE_CHARS)
    text = serializers.CharField(max_length=canned.TEXT_CHARS,
                                 help_text="variables {customer_name}, {shop_name}, {agent_name}; any other {name} "
                                           "is refused")
    shortcut = serializers.CharField(max_length=canned.SHORTCUT_CHARS + 1, required=False, allow_blank=True)
    order = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)


class CannedReplyChangeSerializer(CannedReplyInputSerializer):
    title = serializers.CharField(max_length=canned.TITLE_CHARS, required=False)
    text = serializers.CharField(max_length=canned.TEXT_CHARS, required=False)


def _reply_of_shop(shop: Shop, reply_id: int) -> QuickReply:
    reply = QuickReply.objects.filter(pk=reply_id, shop=shop).first()
    if reply is None:
        raise not_found("reply_id: no such reply in this shop")
    return reply


class CannedReplyListApi(APIView):
    """GET: the shop's canned replies as written (agents and owner). POST: a new one (owner)."""

    @api(name="CannedReplyList", result=CannedReplyOut, many=True, tags=["desk"])
    def get(self, request, shop_id: int):
        shop = served_shop(request, shop_id)
        return ok([canned.reply_row(reply) for reply in QuickReply.objects.filter(shop=shop)])

    @api(name="CannedReplyCreate", result=CannedReplyOut, status=201, request=CannedReplyInputSerializer,
         tags=["desk"])
    def post(self, request, shop_id: int):
        shop = owned_shop(request, shop_id)
        data = validated(CannedReplyInputSerializer, body_of(request))
        return ok(canned.reply_row(canned.reply_create(shop=shop, **data)), 201)


class CannedReplyApi(APIView):
    """GET one, PATCH it, DELETE it (owner; agents may GET)."""

    @api(name="CannedReplyGet", result=CannedReplyOut, tags=["desk"])
    def get(self, request, shop_id: int, reply_id: int):
        return ok(canned.reply_row(_reply_of_shop(served_shop(request, shop_id), reply_id)))

    @api(name="CannedReplyChange", result=CannedReplyOut, request=CannedReplyChangeSerializer, tags=["desk"])
    def patch(self, request, shop_id: int, reply_id: int):
        reply = _reply_of_shop(owned_shop(request, shop_id), reply_id)
        data = validated(CannedReplyChangeSerializer, body_of(request))
        if not data:
            raise bad_request("title, text, shortcut or order: required")
        return ok(canned.reply_row(canned.reply_update(reply=reply, **data)))

    @api(name="CannedReplyDelete", result=CannedReplyOut, tags=["desk"])
    def delete(self, request, shop_id: int, reply_id: int):
        reply = _reply_of_shop(owned_shop(request, shop_id), reply_id)
        return ok(canned.reply_delete(reply=reply))

