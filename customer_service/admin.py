"""The merchant's admin: a shop owner sees and manages only their own shops' agents and sessions."""

from django import forms
import json

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils.html import format_html

from accounts.models import User
from chat.presence import presence
from chat.realtime import layer_is_shared
from customer_service import canned, services, webhooks
from customer_service.hours import MAX_CLOSED_DAYS, MAX_INTERVALS, Interval, check_schedule, check_timezone
from customer_service.models import (
    Assignment, QuickReply, ServiceAgent, ServiceSession, SessionNote, Shop, ShopClosedDay, ShopHours, ShopLabel,
    WebhookAttempt, WebhookDelivery,
)
from imchat.admin_access import ReadOnly, SuperusersOnly
from imchat.errors import AppError
from imchat.inputs import ascii_int
from imchat.links import base_url_from_request

LIVE_NOTE = "REDIS_URL is not set: connected agents see the change on their next fetch."


def owned_shop_ids(request) -> list[int]:
    return list(Shop.objects.filter(owner=request.user).values_list("pk", flat=True))


class MerchantScopedAdmin(admin.ModelAdmin):
    """Superusers see everything; a staff shop owner sees the rows of their own shops only."""

    shop_lookup = "shop"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.shop_lookup}__in": owned_shop_ids(request)})

    def _is_merchant(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and Shop.objects.filter(owner=request.user).exists()

    def has_module_permission(self, request):
        return request.user.is_superuser or self._is_merchant(request)

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or self._is_merchant(request)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser or self._is_merchant(request)

    def has_add_permission(self, request):
        return request.user.is_superuser or self._is_merchant(request)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser or self._is_merchant(request)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "shop" and not request.user.is_superuser:
            kwargs["queryset"] = Shop.objects.filter(owner=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def warn_if_not_live(self, request):
        if not layer_is_shared():
            self.message_user(request, LIVE_NOTE, messages.INFO)


class ShopForm(forms.ModelForm):
    timezone = forms.CharField(max_length=64, initial="UTC",
                               help_text="IANA time zone of the hours below, e.g. Europe/Berlin or Asia/Shanghai")

    class Meta:
        model = Shop
        fields = "__all__"

    def clean_timezone(self):
        try:
            return check_timezone(self.cleaned_data["timezone"].strip())
        except ValueError as error:
            raise ValidationError(str(error)) from None


class ShopHoursFormSet(forms.BaseInlineFormSet):
    """The week's intervals checked together: no overlaps (overnight ones included), not too many."""

    def clean(self):
        super().clean()
        intervals = [
            Interval(form.cleaned_data["weekday"], form.cleaned_data["opens"], form.cleaned_data["closes"])
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
            and {"weekday", "opens", "closes"} <= set(form.cleaned_data)
        ]
        try:
            check_schedule(intervals)
        except ValueError as error:
            raise ValidationError(str(error).removeprefix("schedule: ")) from None


class ShopScopedInline(admin.TabularInline):
    """Rows of a shop its owner edits on the shop's page (the shop admin already scopes the shop)."""

    extra = 0

    def _allowed(self, request) -> bool:
        return request.user.is_superuser or Shop.objects.filter(owner=request.user).exists()

    def has_view_permission(self, request, obj=None):
        return self._allowed(request)

    def has_add_permission(self, request, obj=None):
        return self._allowed(request)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request)

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request)


class ShopHoursInline(ShopScopedInline):
    model = ShopHours
    formset = ShopHoursFormSet
    fields = ("weekday", "opens", "closes")
    max_num = MAX_INTERVALS
    verbose_name_plural = "opening hours (none: always open; closes at or before opens: the next day)"


class ShopClosedDayInline(ShopScopedInline):
    model = ShopClosedDay
    fields = ("date", "note")
    max_num = MAX_CLOSED_DAYS
    verbose_name_plural = "closed days (holidays)"


@admin.register(Shop)
class ShopAdmin(MerchantScopedAdmin):
    shop_lookup = "pk"
    form = ShopForm
    list_display = ("id", "name", "owner", "strategy", "contact_guard", "agent_count")
    search_fields = ("name", "=id")
    fieldsets = (
        (None, {"fields": ("name", "logo", "strategy", "offline_notice", "contact_guard", "owner")}),
        ("Offline notifications to the mall", {"fields": ("offline_notify_minutes",)}),
        ("Business hours and greeting", {"fields": ("timezone", "greeting", "out_of_hours_message")}),
    )
    inlines = (ShopHoursInline, ShopClosedDayInline)

    def get_readonly_fields(self, request, obj=None):
        return () if request.user.is_superuser else ("owner",)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(agents_total=Count("agents"))

    @admin.display(description="agents", ordering="agents_total")
    def agent_count(self, shop):
        return shop.agents_total

    def save_model(self, request, obj, form, change):
        if change:
            services.shop_update(shop=obj, **{name: form.cleaned_data[name] for name in form.changed_data})
        else:
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        with transaction.atomic():  # new hours that open the shop now let its queue move at once
            services.queue_drain(shop_id=form.instance.pk, base_url=base_url_from_request(request))


class AgentForm(forms.ModelForm):
    """Agents are added by username, so a merchant never browses the whole user table."""

    username = forms.CharField(help_text="The user's login name (or id)")

    class Meta:
        model = ServiceAgent
        fields = ("shop", "username", "status", "max_sessions")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.username
            self.fields["username"].disabled = True

    def clean_username(self):
        identifier = self.cleaned_data["username"].strip()
        user_id = ascii_int(identifier)
        query = Q(username=identifier) | (Q(pk=user_id) if user_id is not None else Q())
        user = User.objects.filter(query, is_active=True).first()
        if user is None:
            raise ValidationError("No such user.")
        self.instance.user = user
        return identifier

    def clean(self):
        cleaned = super().clean()
        shop, user = cleaned.get("shop"), getattr(self.instance, "user", None)
        if not self.instance.pk and shop and user and ServiceAgent.objects.filter(shop=shop, user=user).exists():
            raise ValidationError("This user is already an agent of this shop.")
        return cleaned


@admin.register(ServiceAgent)
class ServiceAgentAdmin(MerchantScopedAdmin):
    form = AgentForm
    list_display = ("user", "shop", "status", "max_sessions", "connected", "open_sessions", "last_assigned_at")
    list_editable = ("status", "max_sessions")
    list_filter = ("status", ("shop", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "user__nickname")
    actions = ("make_online", "make_busy", "make_offline")
    list_select_related = ("user", "shop")

    def get_queryset(self, request):
        open_sessions = (
            ServiceSession.objects.filter(shop=OuterRef("shop"), agent=OuterRef("user"), state="open")
            .values("shop")
            .annotate(total=Count("pk"))
            .values("total")
        )
        return super().get_queryset(request).annotate(
            open_total=Coalesce(Subquery(open_sessions, output_field=IntegerField()), 0)
        )

    @admin.display(description="open sessions", ordering="open_total")
    def open_sessions(self, agent):
        return agent.open_total

    @admin.display(description="connected", boolean=True)
    def connected(self, agent):
        return agent.user_id in presence().online([agent.user_id])

    def save_model(self, request, obj, form, change):
        base_url = base_url_from_request(request)
        try:
            if not change:
                services.agent_add(shop=obj.shop, user=obj.user, status=obj.status, max_sessions=obj.max_sessions,
                                   base_url=base_url)
                obj.pk = ServiceAgent.objects.get(shop=obj.shop, user=obj.user).pk
                return
            if "max_sessions" in form.changed_data:
                services.agent_set_capacity(agent=ServiceAgent.objects.get(pk=obj.pk), max_sessions=obj.max_sessions,
                                            base_url=base_url)
            if "status" in form.changed_data:
                services.agent_set_status(user=obj.user, status=obj.status, shop_id=obj.shop_id, base_url=base_url)
        except AppError as error:
            self.message_user(request, error.msg, messages.ERROR)
            return
        self.warn_if_not_live(request)

    def delete_model(self, request, obj):
        services.agent_remove(agent=obj, base_url=base_url_from_request(request))

    def delete_queryset(self, request, queryset):
        for agent in queryset:
            services.agent_remove(agent=agent, base_url=base_url_from_request(request))

    def _set_status(self, request, queryset, status):
        base_url = base_url_from_request(request)
        for agent in queryset.select_related("user"):
            services.agent_set_status(user=agent.user, status=status, shop_id=agent.shop_id, base_url=base_url)
        self.message_user(request, f"{queryset.count()} agent(s) set {status}.")
        self.warn_if_not_live(request)

    @admin.action(description="Set selected agents online")
    def make_online(self, request, queryset):
        self._set_status(request, queryset, ServiceAgent.Status.ONLINE)

    @admin.action(description="Set selected agents busy")
    def make_busy(self, request, queryset):
        self._set_status(request, queryset, ServiceAgent.Status.BUSY)

    @admin.action(description="Set selected agents offline")
    def make_offline(self, request, queryset):
        self._set_status(request, queryset, ServiceAgent.Status.OFFLINE)


class AssignmentInline(admin.TabularInline):
    model = Assignment
    fields = ("created_at", "agent", "reason", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class RatedFilter(admin.SimpleListFilter):
    """Sessions the consumer rated, or closed ones still without a rating (CSAT)."""

    title = "rated"
    parameter_name = "rated"

    def lookups(self, request, model_admin):
        return (("yes", "rated"), ("no", "closed, not rated"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(rating__isnull=False)
        if self.value() == "no":
            return queryset.filter(rating__isnull=True, state=ServiceSession.State.CLOSED)
        return queryset
class LabelFilter(admin.SimpleListFilter):
    """Sessions by label: a merchant is offered only their own shops' labels."""

    title = "label"
    parameter_name = "label"

    def lookups(self, request, model_admin):
        labels = ShopLabel.objects.select_related("shop").order_by("shop_id", "name")
        if not request.user.is_superuser:
            labels = labels.filter(shop__owner=request.user)
        return [(str(label.pk), f"{label.name} ({label.shop.name})") for label in labels]

    def queryset(self, request, queryset):
        label_id = ascii_int(self.value() or "")
        if label_id is None:
            return queryset
        return queryset.filter(labels__pk=label_id)  # the queryset is already scoped to the merchant's shops


class SessionNoteInline(admin.TabularInline):
    """The shop side's private notes (never shown to the customer)."""

    model = SessionNote
    fields = ("created_at", "author", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ServiceSession)
class ServiceSessionAdmin(ReadOnly, MerchantScopedAdmin):
    list_display = ("id", "shop", "consumer", "agent", "state", "created_at", "first_response_at", "closed_at",
                    "rating", "short_rating_comment")
    list_filter = ("state", ("shop", admin.RelatedOnlyFieldListFilter), "rating", RatedFilter, LabelFilter)
    search_fields = ("consumer__username", "consumer__nickname", "conversation__chat_id", "rating_comment")
    list_select_related = ("shop", "consumer", "agent")
    inlines = (AssignmentInline, SessionNoteInline)
    readonly_fields = [field.name for field in ServiceSession._meta.fields]

    @admin.display(description="comment")
    def short_rating_comment(self, session):
        return session.rating_comment[:60]


class QuickReplyForm(forms.ModelForm):
    """The same checks as the REST API (customer_service/canned.py): a slug shortcut, known variables."""

    class Meta:
        model = QuickReply
        fields = ("shop", "title", "shortcut", "text", "order")

    def _checked(self, check, name):
        try:
            return check(self.cleaned_data.get(name))
        except AppError as error:
            raise ValidationError(error.msg.split(": ", 1)[-1]) from None

    def clean_shortcut(self):
        return self._checked(canned.check_shortcut, "shortcut")

    def clean_text(self):
        return self._checked(canned.check_text, "text")


@admin.register(QuickReply)
class QuickReplyAdmin(MerchantScopedAdmin):
    """Canned answers the shop's agents insert from the workspace (`/shortcut` in the reply box)."""

    form = QuickReplyForm
    list_display = ("title", "shortcut", "shop", "order", "short_text")
    list_editable = ("order",)
    list_filter = (("shop", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("title", "shortcut", "text")
    list_select_related = ("shop",)
    fields = ("shop", "title", "shortcut", "text", "order")

    @admin.display(description="text")
    def short_text(self, reply):
        return reply.text if len(reply.text) <= 60 else reply.text[:59] + "…"


@admin.register(ShopLabel)
class ShopLabelAdmin(MerchantScopedAdmin):
    """The labels a shop's agents put on sessions."""

    list_display = ("name", "color", "shop", "session_count")
    list_filter = (("shop", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name",)
    list_select_related = ("shop",)
    fields = ("shop", "name", "color")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(session_total=Count("sessions"))

    @admin.display(description="sessions", ordering="session_total")
    def session_count(self, label):
        return label.session_total


# --- The mall's webhook deliveries: platform staff only (they are mall-wide) ---------------------


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "at", "status", "error", "duration_ms")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(SuperusersOnly, ReadOnly, admin.ModelAdmin):
    """Every event sent (or to send) to the mall, with each attempt; "retry now" makes the selected
    pending or given-up ones due at once (customer_service.webhooks.deliveries_retry_now). Read-only
    otherwise, and superusers only."""

    list_display = ("id", "event", "state", "attempts", "last_status", "short_error", "created_at",
                    "next_attempt_at", "delivered_at")
    list_filter = ("state", "event", "last_status", "created_at")
    search_fields = ("delivery_id", "body")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    fields = ("delivery_id", "event", "state", "attempts", "next_attempt_at", "last_status", "last_error",
              "created_at", "delivered_at", "pretty_body")
    readonly_fields = fields
    inlines = (WebhookAttemptInline,)
    actions = ("retry_now",)

    @admin.display(description="last error")
    def short_error(self, delivery):
        return delivery.last_error[:80]

    @admin.display(description="body (as sent and signed)")
    def pretty_body(self, delivery):
        try:
            text = json.dumps(json.loads(delivery.body), indent=2, ensure_ascii=False)
        except ValueError:
            text = delivery.body
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)

    @admin.action(description="Retry now (pending or given up; attempts are kept)")
    def retry_now(self, request, queryset):
        retried = webhooks.deliveries_retry_now(delivery_ids=list(queryset.values_list("pk", flat=True)))
        skipped = queryset.count() - retried
        self.message_user(request, f"{retried} due now; the next delivery pass sends them"
                          + (f" ({skipped} already delivered, left alone)" if skipped else "") + ".")
