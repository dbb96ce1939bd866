"""What happens to stored messages over time: old ones purged, one user's text erased.

Both work in batches of rows picked by index, each batch its own short transaction, so a purge of
millions of rows never holds a lock on the table (or on a conversation) for more than one batch, and
a run stopped half way is simply run again. Conversations keep their seqs: a purged message is a
gap below the oldest one kept (history and `chat.sync` answer what is left), an erased one keeps
its place with its text replaced, as a recalled message does.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.core.files.storage import default_storage
from django.db import transaction

from chat.models import Conversation, Message, MsgType
from imchat.uploads import stored_image_name

ERASED_TEXT = "[deleted]"
BATCH = 5000


@dataclass
class Purged:
    messages: int = 0
    files: int = 0
    batches: int = 0


def messages_purge(*, before: datetime, batch: int = BATCH, dry_run: bool = False,
                   progress: Callable[[Purged], None] | None = None) -> Purged:
    """Delete every message stored before `before`, `batch` rows at a time (oldest first), and the
    uploaded images no kept message shows any more. `dry_run`: count only."""
    done = Purged()
    old = Message.objects.filter(created_at__lt=before)
    if dry_run:
        done.messages = old.count()
        return done
    while True:
        with transaction.atomic():
            rows = list(old.order_by("created_at", "pk").values_list("pk", "msg_type", "msg")[:batch])
            if not rows:
                return done
            Message.objects.filter(pk__in=[pk for pk, _, _ in rows]).delete()
            images = {msg for _, msg_type, msg in rows if msg_type == MsgType.IMAGE}
            still_shown = set(Message.objects.filter(msg_type=MsgType.IMAGE, msg__in=images)
                              .values_list("msg", flat=True)) if images else set()
        done.messages += len(rows)
        done.files += uploads_delete(images - still_shown)
        done.batches += 1
        if progress:
            progress(done)


def messages_erase(*, sender_id: int, batch: int = BATCH) -> tuple[int, int, set[str]]:
    """Replace the text (and card) of every message `sender_id` sent, and the conversation
    summaries that show it: (messages, conversations, image URLs they showed)."""
    erased, images, after = 0, set(), 0
    while True:
        with transaction.atomic():
            rows = list(Message.objects.filter(sender_id=sender_id, pk__gt=after).order_by("pk")
                        .values_list("pk", "msg_type", "msg")[:batch])
            if not rows:
                break
            after = rows[-1][0]
            Message.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(
                msg=ERASED_TEXT, msg_type=MsgType.TEXT, card=None, guard_kinds="")
        images |= {msg for _, msg_type, msg in rows if msg_type == MsgType.IMAGE}
        erased += len(rows)
    summaries = Conversation.objects.filter(last_uid=sender_id).exclude(last_msg=ERASED_TEXT).update(
        last_msg=ERASED_TEXT, last_msg_type=MsgType.TEXT)
    return erased, summaries, images


def uploads_delete(urls: Iterable[str]) -> int:
    """Delete the files of the URLs that name an image this server stored; how many were there."""
    deleted = 0
    for url in urls:
        name = stored_image_name(url)
        if name and default_storage.exists(name):
            default_storage.delete(name)
            deleted += 1
    return deleted
