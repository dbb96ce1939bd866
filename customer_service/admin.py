"""The merchant's admin: a shop owner sees and manages only their own shops' agents and sessions."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from accounts.models import User
from chat.presence import presence
from chat.realtime import layer_is_shared
from customer_service import services
from customer_service.models import Assignment, QuickReply, ServiceAgent, ServiceSession, Shop
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


@admin.register(Shop)
class ShopAdmin(MerchantScopedAdmin):
    shop_lookup = "pk"
    list_display = ("id", "name", "owner", "strategy", "contact_guard", "agent_count")
    search_fields = ("name", "=id")
    fields = ("name", "logo", "strategy", "offline_notice", "contact_guard", "owner")

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


@admin.register(ServiceSession)
class ServiceSessionAdmin(MerchantScopedAdmin):
    list_display = ("id", "shop", "consumer", "agent", "state", "created_at", "first_response_at", "closed_at")
    list_filter = ("state", ("shop", admin.RelatedOnlyFieldListFilter))
    search_fields = ("consumer__username", "consumer__nickname", "conversation__chat_id")
    list_select_related = ("shop", "consumer", "agent")
    inlines = (AssignmentInline,)
    readonly_fields = [field.name for field in ServiceSession._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(QuickReply)
class QuickReplyAdmin(MerchantScopedAdmin):
    """Canned answers the shop's agents insert from the workspace."""

    list_display = ("title", "shop", "order", "short_text")
    list_editable = ("order",)
    list_filter = (("shop", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("title", "text")
    list_select_related = ("shop",)
    fields = ("shop", "title", "text", "order")

    @admin.display(description="text")
    def short_text(self, reply):
        return reply.text if len(reply.text) <= 60 else reply.text[:59] + "…"
