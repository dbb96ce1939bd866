"""Erasing a user (PIPL / GDPR): profile and message text removed, conversations kept whole for the
other party, an audit line kept.

The user row stays, nameless and deactivated (its id is what conversations, sessions and groups
point at: deleting it would take the other party's history with it); every message it sent keeps its
place and seq with the text `[deleted]`; its ratings' comments, its notes' text, its uploaded images
(avatar and the images it sent) and its session rows are cleared. Deactivating closes the user's open
sockets on every process within IM_ACCOUNT_CHECK_SECONDS. Running it again is harmless (it finishes
what an interrupted run left).
"""

import logging

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from accounts.models import Erasure, User
from chat.lifecycle import ERASED_TEXT, messages_erase, uploads_delete
from customer_service.models import ServiceAgent, ServiceSession, SessionNote, Shop

logger = logging.getLogger(__name__)


class ShopOwnerError(ValueError):
    """A shop's owner is erased only once the shop has another owner (the shop's records are the mall's)."""


def user_erase(*, user_id: int, by: str, reason: str = "") -> Erasure:
    """Erase the user's personal data; the audit row written last."""
    user = User.objects.get(pk=user_id)
    owned = list(Shop.objects.filter(owner_id=user_id).values_list("name", flat=True))
    if owned:
        raise ShopOwnerError(f"user #{user_id} owns shop(s) {', '.join(owned)}: give them another owner first")
    avatar = user.avatar
    with transaction.atomic():
        User.objects.filter(pk=user_id).update(
            username=f"erased-{user_id}", nickname="", avatar="", sign="", email="", first_name="", last_name="",
            password=make_password(None), is_active=False, is_staff=False, is_superuser=False)
        ServiceAgent.objects.filter(user_id=user_id).delete()
    messages, conversations, images = messages_erase(sender_id=user_id)
    with transaction.atomic():
        ServiceSession.objects.filter(consumer_id=user_id).exclude(rating_comment="").update(rating_comment="")
        SessionNote.objects.filter(author_id=user_id).exclude(text=ERASED_TEXT).update(text=ERASED_TEXT)
        files = uploads_delete(images | {avatar})
        erasure = Erasure.objects.create(user_id=user_id, erased_at=timezone.now(), by=by, reason=reason,
                                         messages=messages, conversations=conversations, files=files)
    logger.warning("user #%s erased by %s: %s messages, %s conversation summaries, %s files",
                   user_id, by, messages, conversations, files)
    return erasure
