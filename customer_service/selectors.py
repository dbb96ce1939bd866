"""Customer-service reads: who serves which shop, who is a shop's customer, live sessions."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Subquery

from accounts.models import User
from chat import ids
from chat.models import ChatType, Conversation
from customer_service.models import ServiceAgent, ServiceSession, Shop
from imchat.errors import bad_request, forbidden


def served_shop_ids(user: User) -> list[int]:
    """Shops the user answers for: as an agent, or as the owner."""
    agent_shops = ServiceAgent.objects.filter(user=user).values_list("shop_id", flat=True)
    owned = Shop.objects.filter(owner=user).values_list("pk", flat=True)
    return sorted(set(agent_shops.union(owned)))  # one query: every socket opening asks


def can_serve(user_id: int, shop_id: int) -> bool:
    """Whether the user answers for the shop: as an agent, or as the owner."""
    return (
        ServiceAgent.objects.filter(user_id=user_id, shop_id=shop_id).exists()
        or Shop.objects.filter(pk=shop_id, owner_id=user_id).exists()
    )


def shop_side_of(user: User, chat_id: str) -> int:
    """The shop of a customer-service chat the user answers for, or -403."""
    ref = ids.parse_chat_id(chat_id)
    if ref.chat_type != ChatType.SERVICE:
        raise bad_request("chat_id: not a customer-service chat")
    if not can_serve(user.pk, ref.a):
        raise forbidden("not an agent of this shop")
    return ref.a


def shop_side_unless_own(user: User, chat_id: str) -> int | None:
    """The shop of `<shop>____<someone else>` when the user serves that shop; None for any other chat.

    What a chat_id alone means (the compat client asks for an agent's history without role_type):
    the customer's own chat is their side, and a caller who does not serve the shop gets no shop side.
    Only another user's customer-service chat costs a query.
    """
    ref = ids.parse_chat_id(chat_id)
    if ref.chat_type != ChatType.SERVICE or ref.b == user.pk:
        return None
    return ref.a if can_serve(user.pk, ref.a) else None


def customer_conversation(shop_id: int, user_id: int) -> Conversation | None:
    """The user's conversation with the shop, or None when they are not its customer.

    Only a consumer's own message opens it (a shop never writes first), so it exists exactly when
    the user has written to the shop: the one test of "a customer of this shop" for the shop side.
    """
    return Conversation.objects.filter(chat_id=ids.service_chat_id(shop_id, user_id)).first()


@dataclass(frozen=True)
class LiveSession:
    """An open session with what routing one more message needs."""

    pk: int
    shop_id: int
    agent_id: int | None
    agent_status: str | None  # None: the agent is no agent of the shop (any more)
    agent_serves: bool  # an agent or the owner of the shop
    consumer_active: bool
    last_activity_at: datetime
    shop_name: str
    shop_logo: str


def live_sessions_of(chat_ids: set[str]) -> dict[str, LiveSession]:
    """The open sessions of these conversations, in one statement."""
    agent_status = ServiceAgent.objects.filter(shop_id=OuterRef("shop_id"), user_id=OuterRef("agent_id"))
    rows = (
        ServiceSession.objects.filter(conversation__chat_id__in=chat_ids, state=ServiceSession.State.OPEN)
        .annotate(agent_status=Subquery(agent_status.values("status")[:1]))
        .values_list("conversation__chat_id", "pk", "shop_id", "agent_id", "agent_status", "shop__owner_id",
                     "consumer__is_active", "last_activity_at", "shop__name", "shop__logo")
    )
    return {
        chat_id: LiveSession(pk, shop_id, agent_id, status, status is not None or owner_id == agent_id, active,
                             last_activity_at, shop_name, shop_logo)
        for chat_id, pk, shop_id, agent_id, status, owner_id, active, last_activity_at, shop_name, shop_logo in rows
    }
