"""System notices (chat_type 3): sent by the platform, never by users.

A notice to some users is stored in each one's box (`sys_<uid>`). A notice to everyone is stored
once, in the shared announcements box `sys_0`, and pushed once to the `everyone` channel group;
each user's read marker on that box is created the first time they look, so unread counts work
for users who were offline when it was sent, and nothing is written per user at send time.
"""

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import User
from chat import ids, realtime
from chat.messages import NOBODY, Author, Draft, messages_store
from chat.models import ChatType, Conversation, Message, MsgType, Notice, Participant, SentAs
from chat.payloads import party_display
from imchat.errors import bad_request
from imchat.links import default_base_url

EVERYONE = 0


def _box(user_id: int) -> Conversation:
    chat_id = ids.system_chat_id(user_id)
    try:
        with transaction.atomic():
            conversation, created = Conversation.objects.get_or_create(
                chat_id=chat_id, defaults={"chat_type": ChatType.SYSTEM, "title": settings.IM_SYSTEM_NAME}
            )
            if created and user_id != EVERYONE:
                Participant.objects.create(conversation=conversation, user_id=user_id)
    except IntegrityError:
        conversation = Conversation.objects.get(chat_id=chat_id)
    return conversation


def _notice_draft(*, chat_id: str, text: str, to_uid: int, receivers: tuple[str, ...]) -> Draft:
    nickname, avatar = party_display(ChatType.SYSTEM, "", "", default_base_url())
    return Draft(chat_id=chat_id, chat_type=ChatType.SYSTEM, msg_type=MsgType.TEXT, msg=text,
                 author=Author(nickname, avatar), reads=NOBODY, sent_as=SentAs.SYSTEM, to_uid=to_uid,
                 receivers=receivers)


@transaction.atomic
def notice_send(*, audience: str, text: str, user_ids: list[int] | None = None, target_id: int | None = None,
                sent_by: User | None = None) -> Notice:
    """Store and push a notice: to everyone (once), or into each listed user's box."""
    text = (text or "").strip()
    if not text:
        raise bad_request("text: required")
    if len(text) > settings.IM_MAX_MSG_CHARS:
        raise bad_request(f"text: at most {settings.IM_MAX_MSG_CHARS} characters")
    notice = Notice.objects.create(audience=audience, target_id=target_id, text=text, sent_by=sent_by)
    if audience == Notice.Audience.ALL:
        drafts = [_notice_draft(chat_id=_box(EVERYONE).chat_id, text=text, to_uid=0,
                                receivers=(realtime.everyone_group(),))]
    else:
        drafts = [_notice_draft(chat_id=_box(user_id).chat_id, text=text, to_uid=user_id,
                                receivers=(realtime.user_group(user_id),))
                  for user_id in dict.fromkeys(user_ids or [])]
    messages_store(drafts)
    Notice.objects.filter(pk=notice.pk).update(recipients=len(drafts))
    notice.recipients = len(drafts)
    return notice


def announcements_box_ensure(user: User) -> None:
    """The user's read marker on the shared announcements box, created when they first look.

    They see the announcements sent since they joined; a box with nothing for them stays out of
    their list until something arrives (the list leaves out boxes with nothing after joined_seq).
    """
    box = Conversation.objects.filter(chat_id=ids.system_chat_id(EVERYONE)).only("pk", "last_seq").first()
    if box is None or box.last_seq == 0:
        return
    if not Participant.objects.filter(conversation=box, user=user).exists():
        announcements_box_join(user, box.pk)


def announcements_box_join(user: User, box_id: int) -> None:
    """Their read marker on the announcements box, placed at its last message before they joined."""
    before_joining = (
        Message.objects.filter(conversation_id=box_id, created_at__lt=user.date_joined).order_by("-seq")
        .values_list("seq", flat=True).first()
    ) or 0
    try:
        with transaction.atomic():
            Participant.objects.create(conversation_id=box_id, user=user, joined_seq=before_joining,
                                       last_read_seq=before_joining)
    except IntegrityError:
        pass
