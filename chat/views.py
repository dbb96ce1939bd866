"""The consumer's web chat page (the socket does the rest, with static/js/imchat.js)."""

import time
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from chat.cards import card_from_link_value, card_read
from imchat.errors import AppError
from imchat.inputs import query_int
from imchat.links import absolute_url, base_url_from_request

# Strings the page scripts show, translated on the server ({name} is filled in by the script).
CLIENT_STRINGS = {
    "connecting": _("Connecting…"),
    "connected": _("Connected"),
    "waiting": _("Connection lost. Reconnecting in {seconds} s…"),
    "unauthorized": _("You are signed out. Please log in again."),
    "sending": _("Sending…"),
    "not_sent": _("Not sent: {reason}"),
    "image": _("[Image]"),
    "image_alt": _("Image from {name}"),
    "recalled": _("This message was recalled"),
    "loading_older": _("Loading earlier messages…"),
    "history_start": _("This is the beginning of the conversation"),
    "unread": _("{count} unread"),
    "you": _("You"),
    "yesterday": _("Yesterday"),
    "no_conversations": _("No conversations yet. Start one with the buttons above."),
    "pick_conversation": _("Pick a conversation, or start a new one."),
    "queued": _("All agents are busy or away. You are number {position} in the queue."),
    "queue_eta": _("About {minutes} min wait."),
    "assigned": _("An agent is with you now."),
    "transferred": _("Your conversation was passed to another agent."),
    "closed": _("This conversation has ended. Write again any time."),
    "shop_offline": _("Nobody is online in this shop right now: leave a message."),
    "shop_online": _("Agents are online."),
    "shop_closed": _("The shop is closed now."),
    "shop_closed_until": _("The shop is closed now. It opens {when}."),
    "queued_closed": _("The shop is closed now: your message waits for the opening."),
    "uploading": _("Uploading image…"),
    "upload_failed": _("The image could not be uploaded: {reason}"),
    "upload_missing": _("Image upload is not available on this server yet."),
    "group_created": _("Group “{name}” created."),
    "member_count": _("{count} members"),
    "error": _("Something went wrong: {reason}"),
    "shop": _("Shop"),
    "group": _("Group"),
    "system": _("Notices"),
    "private": _("Private chat"),
    "typing": _("{name} is typing…"),
    "someone": _("Someone"),
    "card_product": _("Product"),
    "card_order": _("Order {id}"),
    "card_total": _("Total {amount}"),
    "card_quantity": _("× {quantity}"),
    "card_open_product": _("View product"),
    "card_open_order": _("View order"),
    "card_ask_product": _("Ask about this product"),
    "card_send_order": _("Send this order"),
    "card_send": _("Send this card"),
    "card_refused": _("This card could not be verified: {reason}"),
    "card_pick_conversation": _("Open a conversation to send this card."),
    "card_dismiss": _("Dismiss"),
}


def client_strings() -> dict[str, str]:
    return {key: str(text) for key, text in CLIENT_STRINGS.items()}


def page_config(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """What every page script needs: who is logged in, the server's clock, the language, the strings."""
    user = request.user
    return {
        "me": {"id": user.pk, "name": user.display_name,
               "avatar": absolute_url(user.avatar, base_url_from_request(request))},
        "server_time": int(time.time()),
        "lang": get_language(),
        "socket_path": "/ws/",
        "strings": client_strings(),
        **extra,
    }


def card_offer(request: HttpRequest) -> dict[str, Any]:
    """A card the mall handed over in the page's URL (`?card=<base64url JSON>`), verified before it is
    shown: `offer_card` (what to send and what to draw) or `offer_card_error` (why not)."""
    value = request.GET.get("card")
    if not value:
        return {}
    try:
        signed = card_from_link_value(value)
        card = card_read(signed)
    except AppError as error:
        return {"offer_card_error": error.msg}
    return {"offer_card": {"signed": signed, "shown": card.shown, "text": card.text}}


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    """Conversations, private and group chat, and "contact a shop" (?shop=ID opens that shop)."""
    config = page_config(
        request,
        open_shop=query_int(request, "shop"),
        # The image upload of PROTOCOL.md section 6 (multipart `file`; the session cookie is enough).
        upload_url="/user/upload",
        shops_url=reverse("shop-directory"),
        ratings_pending_url=reverse("api-ratings-pending"),  # closed sessions waiting for the consumer's rating
        **card_offer(request),
    )
    return render(request, "chat/chat.html", {"config": config})
