"""Who a system notice reaches: everyone, a user, a shop's agents and owner, or a group's members."""

from accounts.models import User
from chat.models import ChatGroup, Notice, Participant
from chat.notices import notice_send
from customer_service.models import ServiceAgent, Shop
from imchat.errors import bad_request, not_found

Audience = Notice.Audience


def notice_recipients(audience: str, target_id: int | None) -> list[int] | None:
    """User ids of the boxes to store it in (None: everyone, stored once)."""
    if audience == Audience.ALL:
        return None
    if target_id is None:
        raise bad_request("target_id: required")
    if audience == Audience.USER:
        if not User.objects.filter(pk=target_id, is_active=True).exists():
            raise not_found("no such user")
        return [target_id]
    if audience == Audience.SHOP:
        shop = Shop.objects.filter(pk=target_id).first()
        if shop is None:
            raise not_found("no such shop")
        return [shop.owner_id, *ServiceAgent.objects.filter(shop=shop).values_list("user_id", flat=True)]
    if audience == Audience.GROUP:
        group = ChatGroup.objects.filter(pk=target_id, dissolved_at__isnull=True).first()
        if group is None:
            raise not_found("no such group")
        return list(
            Participant.objects.filter(conversation__group=group, left_seq__isnull=True, user__isnull=False)
            .values_list("user_id", flat=True)
        )
    raise bad_request("audience: all, user, shop or group")


def notice_send_to(*, audience: str, target_id: int | None, text: str, sent_by: User | None = None) -> Notice:
    return notice_send(audience=audience, text=text, user_ids=notice_recipients(audience, target_id),
                       target_id=target_id, sent_by=sent_by)
