"""Read-only views of conversations and messages; a merchant sees their shops' only."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from chat.models import ChatGroup, Conversation, Message, Notice
from chat.realtime import layer_is_shared
from customer_service.admin import LIVE_NOTE, MerchantScopedAdmin
from customer_service.notices import notice_recipients, notice_send_to
from imchat.errors import AppError


class ReadOnlyScopedAdmin(MerchantScopedAdmin):
    shop_lookup = "shop_id"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyScopedAdmin):
    list_display = ("chat_id", "chat_type", "title", "last_seq", "last_msg", "last_time")
    list_filter = ("chat_type",)
    search_fields = ("=chat_id", "title")
    readonly_fields = [field.name for field in Conversation._meta.fields]


@admin.register(Message)
class MessageAdmin(ReadOnlyScopedAdmin):
    list_display = ("id", "conversation", "seq", "sender", "sent_as", "msg_type", "msg", "created_at")
    list_filter = ("chat_type", "sent_as", "msg_type")
    search_fields = ("=conversation__chat_id", "msg")
    list_select_related = ("conversation", "sender")
    readonly_fields = [field.name for field in Message._meta.fields]


@admin.register(ChatGroup)
class ChatGroupAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "created_at", "dissolved_at")
    search_fields = ("name", "=id")


class NoticeForm(forms.ModelForm):
    class Meta:
        model = Notice
        fields = ("audience", "target_id", "text")

    def clean(self):
        cleaned = super().clean()
        try:
            notice_recipients(cleaned.get("audience"), cleaned.get("target_id"))
        except AppError as error:
            raise ValidationError(error.msg) from None
        return cleaned


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    """Staff send system notices here (superusers only)."""

    form = NoticeForm
    list_display = ("id", "audience", "target_id", "text", "recipients", "sent_by", "created_at")
    fields = ("audience", "target_id", "text")
    list_filter = ("audience",)

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        notice = notice_send_to(audience=obj.audience, target_id=obj.target_id, text=obj.text, sent_by=request.user)
        obj.pk = notice.pk
        if not layer_is_shared():
            self.message_user(request, LIVE_NOTE, messages.INFO)
