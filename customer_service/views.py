"""Web pages of the shops' side: where a login lands, the agent workspace, the merchant dashboard.

Pages are server-rendered; their live parts come from the socket (static/js/imchat.js) and from the
small JSON views here. Everything is scoped: an agent sees the shops they serve, a merchant the
shops they own, a superuser every shop on the dashboard.
"""

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from chat import ids
from chat.models import ChatType
from chat.views import card_offer, page_config
from customer_service import reports
from customer_service.demo import demo_card_links
from customer_service.models import ServiceAgent, Shop
from customer_service.hours import describe_moment, is_open, next_opening
from customer_service.selectors import (
    agents_with_state, customer_conversation, served_shop_ids, shop_hours, shops_open_now,
)
from imchat.api import HTTP_STATUS
from imchat.errors import AppError, Code, bad_request, forbidden, not_found
from imchat.inputs import query_int
from imchat.links import absolute_url, base_url_from_request

WORKSPACE_STRINGS = {
    "my_sessions_empty": _("No conversations assigned to you."),
    "queue_empty": _("Nobody is waiting."),
    "team_empty": _("No other open conversations."),
    "waiting_since": _("waiting {minutes} min"),
    "position": _("#{position} in queue"),
    "with_agent": _("with {name}"),
    "transferred_to": _("Passed to {name}."),
    "closed_ok": _("Conversation closed."),
    "status_set": _("Your status is now {status}."),
    "status_online": _("online"),
    "status_busy": _("busy"),
    "status_offline": _("offline"),
    "no_agents": _("No other agent of this shop is online."),
    "first_response": _("first reply after {seconds} s"),
    "sessions_total": _("Conversations with this shop: {count}"),
    "session_open": _("open"),
    "session_queued": _("queued"),
    "session_closed": _("closed"),
    "agent_connected": _("connected"),
    "agent_not_connected": _("not connected"),
    "confirm_close": _("Close this conversation?"),
    "seconds": _("{value} s"),
    "minutes": _("{value} min"),
    "hours": _("{value} h"),
    "none": _("—"),
    # A hidden tab's notifications (static/js/desk-alerts.js).
    "notify_enable": _("Enable notifications"),
    "notify_disable": _("Turn notifications off"),
    "notify_blocked": _("Notifications are blocked in this browser"),
    "notify_new_session": _("New conversation"),
    "notify_new_session_body": _("{name} is waiting for your answer."),
}

# CSAT on the shop's side (static/js/desk-csat.js).
CSAT_STRINGS = {
    "rating_of": _("rated {score} of 5"),
    "rating_received": _("The customer rated this conversation {stars} ({score}/5)."),
    "rating_count": _("ratings: {count}"),
    "rating_none": _("no ratings yet"),
}


# The dashboard's reports (static/js/dashboard-reports.js).
REPORT_STRINGS = {
    "report_started": _("started"),
    "report_closed": _("closed"),
    "report_p50": _("median"),
    "report_p90": _("90th percentile"),
    "report_no_agent": _("(no agent yet)"),
    "report_range": _("{since} to {until} ({zone})"),
    "report_failed": _("The report could not be loaded."),
}


def shop_side_strings() -> dict[str, str]:
    return {key: str(text) for key, text in {**WORKSPACE_STRINGS, **CSAT_STRINGS}.items()}

# The workspace's search box (static/js/desk-search.js).
SEARCH_STRINGS = {
    "search_running": _("Searching…"),
    "search_found": _("Messages found: {count}"),
    "search_found_recent": _("Messages found: {count} (a term this short searches the recent messages only)"),
    "search_none": _("Nothing found."),
    "search_none_recent": _("Nothing found among the recent messages (use three or more characters to search "
                            "them all)."),
    "search_customer": _("customer"),
}


# The contact guard's badge in the workspace (static/js/desk-guard.js).
GUARD_STRINGS = {
    "guard_found": _("Contact details: {kinds}"),
    "guard_title": _("The shop's contact guard found contact details in this message"),
    "guard_phone": _("phone number"),
    "guard_wechat": _("WeChat"),
    "guard_qq": _("QQ"),
    "guard_email": _("e-mail"),
    "guard_link": _("outside link"),
}


def home(request: HttpRequest) -> HttpResponse:
    """The home page; on a development server, links that hand the demo's signed cards to the pages."""
    return render(request, "home.html", {"demo_cards": demo_card_links(base_url_from_request(request))})


def dashboard_shop_ids(user: User) -> list[int]:
    """Shops whose dashboard the user may see: all for a superuser, else the shops they own."""
    shops = Shop.objects.all() if user.is_superuser else Shop.objects.filter(owner=user)
    return list(shops.order_by("pk").values_list("pk", flat=True))


def navigation(request: HttpRequest) -> dict:
    """Template context: which of the shop pages the viewer may open (looked up only when used)."""

    def links() -> dict:
        user = request.user
        if not user.is_authenticated:
            return {"workspace": False, "dashboard": False}
        return {"workspace": bool(served_shop_ids(user)), "dashboard": bool(dashboard_shop_ids(user))}

    return {"im_nav": SimpleLazyObject(links)}


def json_view(view: Callable) -> Callable:
    """The pages' JSON endpoints: a login is required (401, not a redirect to the login page), and
    an AppError raised inside is the one error shape, `{"detail": msg}` with its HTTP status."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            if not request.user.is_authenticated:
                raise AppError(Code.NOT_LOGGED_IN, "not logged in")
            return view(request, *args, **kwargs)
        except AppError as error:
            return JsonResponse({"detail": error.msg}, status=HTTP_STATUS.get(error.code, 400))

    return wrapped


def _only_shop(request: HttpRequest, allowed: list[int]) -> list[int] | None:
    """?shop=ID narrows to one of the allowed shops; None when that shop is not allowed."""
    wanted = query_int(request, "shop")
    if wanted is None:
        return allowed
    return [wanted] if wanted in allowed else None


@login_required
def start(request: HttpRequest) -> HttpResponse:
    """After login: agents and merchants go to the workspace, everyone else to the chat."""
    if served_shop_ids(request.user):
        return redirect("workspace")
    return redirect("chat")


def _forbidden_page(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "forbidden.html", {"message": message}, status=403)


@login_required
def workspace(request: HttpRequest) -> HttpResponse:
    shop_ids = served_shop_ids(request.user)
    if not shop_ids:
        return _forbidden_page(request, _("The workspace is for the agents of a shop."))
    base_url = base_url_from_request(request)
    state = reports.workspace_state(user=request.user, shop_ids=shop_ids, base_url=base_url)
    config = page_config(request, state=state, state_url=reverse("workspace-state"),
                         customer_url=reverse("workspace-customer"), upload_url="/user/upload", **card_offer(request))
    config["strings"].update(shop_side_strings())
    config["strings"].update({key: str(text) for key, text in WORKSPACE_STRINGS.items()})
    config["strings"].update({key: str(text) for key, text in SEARCH_STRINGS.items()})
    config["strings"].update({key: str(text) for key, text in GUARD_STRINGS.items()})
    return render(request, "customer_service/workspace.html", {"config": config, "state": state})


@json_view
def workspace_state(request: HttpRequest) -> HttpResponse:
    shop_ids = served_shop_ids(request.user)
    if not shop_ids:
        raise forbidden("not an agent")
    return JsonResponse(reports.workspace_state(user=request.user, shop_ids=shop_ids,
                                                base_url=base_url_from_request(request)))


@json_view
def workspace_customer(request: HttpRequest) -> HttpResponse:
    """The customer of a customer-service chat, and their last sessions with the shop."""
    ref = ids.parse_chat_id(request.GET.get("chat_id", ""))
    if ref.chat_type != ChatType.SERVICE:
        raise bad_request("chat_id: not a customer-service chat")
    if ref.a not in served_shop_ids(request.user):
        raise forbidden("not an agent of this shop")
    # Only the shop's customers: the same 404 for a user who never wrote to it and for no user.
    consumer = User.objects.filter(pk=ref.b).first() if customer_conversation(ref.a, ref.b) else None
    if consumer is None:
        raise not_found("not a customer of this shop")
    return JsonResponse(reports.customer_summary(shop_id=ref.a, consumer=consumer,
                                                 base_url=base_url_from_request(request)))


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    allowed = dashboard_shop_ids(request.user)
    if not allowed:
        return _forbidden_page(request, _("The dashboard is for the owners of a shop."))
    shop_ids = _only_shop(request, allowed)
    if shop_ids is None:
        return _forbidden_page(request, _("That is not one of your shops."))
    base_url = base_url_from_request(request)
    data = reports.shop_dashboard(shop_ids=shop_ids, base_url=base_url)
    shops = reports.shop_rows(allowed, base_url)
    selected = shop_ids[0] if len(shop_ids) == 1 and len(allowed) > 1 else None
    config = page_config(request, data=data, data_url=reverse("dashboard-data"), shop=selected,
                         reports_url=reverse("dashboard-reports"))
    config["strings"].update(shop_side_strings())
    config["strings"].update({key: str(text) for key, text in REPORT_STRINGS.items()})
    return render(request, "customer_service/dashboard.html",
                  {"config": config, "data": data, "shops": shops, "selected": selected,
                   "shop_hours": shop_hours_rows(shop_ids)})


def shop_hours_rows(shop_ids: list[int]) -> list[dict]:
    """Each shop's hours as the dashboard shows them (the admin's shop page edits them)."""
    now = timezone.now()
    rows = []
    for shop in Shop.objects.filter(pk__in=shop_ids).order_by("pk").only("name", "timezone", "greeting"):
        hours = shop_hours(shop.pk, timezone=shop.timezone)
        opens = next_opening(hours, now)
        rows.append({"id": shop.pk, "name": shop.name, "hours": hours, "open_now": is_open(hours, now),
                     "next_opening": describe_moment(opens, hours.timezone) if opens else "",
                     "intervals": [str(i) for i in sorted(hours.intervals, key=lambda i: (i.weekday, i.opens))],
                     "closed_days": sorted(hours.closed_days), "greeting": shop.greeting,
                     "edit_url": reverse("admin:customer_service_shop_change", args=[shop.pk])})
    return rows


@json_view
def dashboard_data(request: HttpRequest) -> HttpResponse:
    allowed = dashboard_shop_ids(request.user)
    shop_ids = _only_shop(request, allowed) if allowed else None
    if not shop_ids:
        raise forbidden("not your shop")
    return JsonResponse(reports.shop_dashboard(shop_ids=shop_ids, base_url=base_url_from_request(request)))


@json_view
def dashboard_reports(request: HttpRequest) -> HttpResponse:
    """The dashboard's 7- or 30-day charts and agent table (?days=7|30, ?shop=ID)."""
    allowed = dashboard_shop_ids(request.user)
    shop_ids = _only_shop(request, allowed) if allowed else None
    if not shop_ids:
        raise forbidden("not your shop")
    days = query_int(request, "days") or reports.REPORT_DAYS[0]
    if days not in reports.REPORT_DAYS:
        raise bad_request("days: 7 or 30")
    return JsonResponse(reports.dashboard_period(shop_ids=shop_ids, days=days))


@json_view
def shop_directory(request: HttpRequest) -> HttpResponse:
    """Shops a consumer can contact, and whether anyone is there to answer now."""
    base_url = base_url_from_request(request)
    shops = list(Shop.objects.order_by("pk")[:200])
    agents = agents_with_state(ServiceAgent.objects.filter(shop__in=shops, status=ServiceAgent.Status.ONLINE))
    answering = {agent.shop_id for agent in agents if agent.connected}
    open_now = shops_open_now(shops, timezone.now())
    return JsonResponse({"shops": [
        {"id": shop.pk, "name": shop.name, "logo": absolute_url(shop.logo, base_url), "online": shop.pk in answering,
         "open_now": open_now[shop.pk]}
        for shop in shops
    ]})
