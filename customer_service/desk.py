"""The shop side's desk: private notes on sessions and the shop's labels (reads and writes).

Notes and labels belong to the shop side only: they live in their own tables (never a Message),
are read and written only by the shop's agents and owner, and are pushed only to the shop's agent
group (309 a note, 310 a session's labels), the acting socket excepted (PROTOCOL.md section 2).
"""

import re
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.models import User
from chat import realtime
from chat.payloads import unix
from customer_service.models import ServiceSession, SessionNote, Shop, ShopLabel
from customer_service.selectors import can_serve, shop_side_of
from imchat.errors import Code, bad_request, forbidden, not_found

NOTE_MAX_CHARS = 2000
NOTES_LISTED = 200
LABEL_NAME_CHARS = 32
LABELS_PER_CHANGE = 50
LABELS_PER_SHOP = 200
DEFAULT_COLOR = "#64748b"
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


# --- Which session: the conversation's live one, else its latest -------------------------------


def session_of_chat(user: User, chat_id: str) -> ServiceSession:
    """The session a desk action on `chat_id` is about, if the user serves its shop (-403, -404)."""
    shop_id = shop_side_of(user, chat_id)
    session = (
        ServiceSession.objects.filter(conversation__chat_id=chat_id, shop_id=shop_id).select_related("conversation")
        .order_by("-created_at", "-pk").first()  # at most one is live, and it is the newest
    )
    if session is None:
        raise not_found("chat_id: no session in this conversation")
    return session


def session_for_shop_side(user: User, session_id: int) -> ServiceSession:
    """A session by id, for an agent or the owner of its shop (-404 unknown, -403 another shop's)."""
    session = ServiceSession.objects.filter(pk=session_id).select_related("conversation").first()
    if session is None:
        raise not_found("session_id: no such session")
    if not (user.is_superuser or can_serve(user.pk, session.shop_id)):
        raise forbidden("not an agent of this shop")
    return session


# --- Notes --------------------------------------------------------------------------------------


def note_row(note: SessionNote, author_name: str) -> dict[str, Any]:
    return {"id": note.pk, "session_id": note.session_id, "author_uid": note.author_id or 0,
            "author_name": author_name, "text": note.text, "createtime": unix(note.created_at)}


def _note_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise bad_request("text: required")
    text = text.strip()
    if "\x00" in text:
        raise bad_request("text: must not contain NUL characters")
    if len(text) > NOTE_MAX_CHARS:
        raise bad_request(f"text: at most {NOTE_MAX_CHARS} characters")
    return text


@transaction.atomic
def note_add(*, author: User, session: ServiceSession, text: Any, exclude_channel: str | None = None) -> dict:
    """Store a private note on a session (the caller checked the author serves its shop); the shop's
    other agent sockets get a 309."""
    note = SessionNote.objects.create(shop_id=session.shop_id, session=session,
                                      conversation_id=session.conversation_id, author=author, text=_note_text(text))
    row = note_row(note, author.display_name)
    realtime.push_on_commit([realtime.shop_agents_group(session.shop_id)], Code.SESSION_NOTE,
                            {"chat_id": session.conversation.chat_id, "shop_id": session.shop_id, "note": row},
                            exclude_channel=exclude_channel)
    return row


def notes_of(*, conversation_id: int | None = None, session_id: int | None = None) -> list[dict]:
    """The latest notes of a conversation (every session) or of one session, oldest first."""
    notes = SessionNote.objects.select_related("author")
    notes = notes.filter(session_id=session_id) if session_id else notes.filter(conversation_id=conversation_id)
    latest = list(notes.order_by("-created_at", "-pk")[:NOTES_LISTED])
    return [note_row(note, note.author.display_name if note.author else "") for note in reversed(latest)]


# --- Labels -------------------------------------------------------------------------------------


def label_row(label: ShopLabel) -> dict[str, Any]:
    return {"id": label.pk, "name": label.name, "color": label.color}


def shop_labels(shop_ids: Iterable[int]) -> list[dict]:
    return [{**label_row(label), "shop_id": label.shop_id}
            for label in ShopLabel.objects.filter(shop_id__in=list(shop_ids)).order_by("shop_id", "name", "pk")]


def _label_fields(name: Any, color: Any) -> dict[str, str]:
    fields = {}
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name: required")
        name = " ".join(name.split())
        if "\x00" in name:
            raise bad_request("name: must not contain NUL characters")
        if len(name) > LABEL_NAME_CHARS:
            raise bad_request(f"name: at most {LABEL_NAME_CHARS} characters")
        fields["name"] = name
    if color is not None:
        if not isinstance(color, str) or not _COLOR.fullmatch(color):
            raise bad_request("color: must be #rrggbb")
        fields["color"] = color.lower()
    return fields


def _save_label(label: ShopLabel) -> ShopLabel:
    try:
        with transaction.atomic():
            label.save()
    except IntegrityError:
        raise bad_request(f"name: this shop already has a label {label.name!r}") from None
    return label


@transaction.atomic
def label_create(*, shop: Shop, name: Any, color: Any = None) -> ShopLabel:
    if ShopLabel.objects.filter(shop=shop).count() >= LABELS_PER_SHOP:
        raise bad_request(f"name: a shop keeps at most {LABELS_PER_SHOP} labels")
    fields = _label_fields(name, color)
    return _save_label(ShopLabel(shop=shop, name=fields["name"], color=fields.get("color", DEFAULT_COLOR)))


@transaction.atomic
def label_update(*, label: ShopLabel, name: Any = None, color: Any = None) -> ShopLabel:
    for field, value in _label_fields(name, color).items():
        setattr(label, field, value)
    return _save_label(label)


@transaction.atomic
def label_delete(*, label: ShopLabel) -> dict:
    """The label leaves the shop and every session that had it (agents see it at their next fetch)."""
    row = label_row(label)
    label.delete()
    return row


def label_of_shop(shop_id: int, label_id: int) -> ShopLabel:
    label = ShopLabel.objects.filter(pk=label_id, shop_id=shop_id).first()
    if label is None:
        raise not_found("label_id: no such label in this shop")
    return label


def _labels_named(shop_id: int, refs: Any, field: str) -> set[int]:
    """Label ids from a list of ids (JSON numbers) and names (strings), all of this shop's, or -404."""
    if refs is None:
        return set()
    if not isinstance(refs, list):
        raise bad_request(f"{field}: must be a list of label ids or names")
    if len(refs) > LABELS_PER_CHANGE:
        raise bad_request(f"{field}: at most {LABELS_PER_CHANGE} items")
    ids, names = set(), set()
    for ref in refs:
        if isinstance(ref, int) and not isinstance(ref, bool) and 0 < ref < 2**63:
            ids.add(ref)
        elif isinstance(ref, str) and 0 < len(ref.strip()) <= LABEL_NAME_CHARS and "\x00" not in ref:
            names.add(" ".join(ref.split()))
        else:
            raise bad_request(f"{field}: must be a list of label ids or names")
    rows = list(ShopLabel.objects.filter(Q(pk__in=ids) | Q(name__in=names), shop_id=shop_id)
                .values_list("pk", "name"))
    missing = [str(ref) for ref in sorted(ids - {pk for pk, _ in rows})]
    missing += sorted(names - {name for _, name in rows})
    if missing:
        raise not_found(f"{field}: no such label in this shop: {', '.join(missing)}")
    return {pk for pk, _ in rows}


def session_labels(session_id: int) -> list[dict]:
    return [label_row(label) for label in ShopLabel.objects.filter(sessions=session_id).order_by("name", "pk")]


@transaction.atomic
def session_labels_change(*, session: ServiceSession, add: Any = None, remove: Any = None,
                          exclude_channel: str | None = None) -> dict:
    """Put labels on a session and take others off (the caller checked the user serves its shop).
    Every label must be the session's shop's, or nothing changes; the shop's agents get a 310.
    Without `add` and `remove` it only reads the session's labels."""
    adding = _labels_named(session.shop_id, add, "add")
    removing = _labels_named(session.shop_id, remove, "remove")
    if adding & removing:
        raise bad_request("remove: a label cannot be added and removed at once")
    ServiceSession.objects.select_for_update().filter(pk=session.pk).first()  # one change at a time
    Through = ShopLabel.sessions.through
    have = set(Through.objects.filter(servicesession_id=session.pk).values_list("shoplabel_id", flat=True))
    if removing & have:
        Through.objects.filter(servicesession_id=session.pk, shoplabel_id__in=removing).delete()
    Through.objects.bulk_create([Through(servicesession_id=session.pk, shoplabel_id=label_id)
                                 for label_id in sorted(adding - have)])
    result = {"chat_id": session.conversation.chat_id, "shop_id": session.shop_id, "session_id": session.pk,
              "labels": session_labels(session.pk)}
    if adding - have or removing & have:  # a change with nothing to change (or a plain read) tells nobody
        realtime.push_on_commit([realtime.shop_agents_group(session.shop_id)], Code.SESSION_LABELS, result,
                                exclude_channel=exclude_channel)
    return result


def label_ids_by_session(session_ids: Iterable[int]) -> dict[int, list[int]]:
    """{session: [label ids]} in one query (the workspace's lists)."""
    Through = ShopLabel.sessions.through
    labels: dict[int, list[int]] = {}
    for session_id, label_id in (Through.objects.filter(servicesession_id__in=list(session_ids))
                                 .order_by("shoplabel__name").values_list("servicesession_id", "shoplabel_id")):
        labels.setdefault(session_id, []).append(label_id)
    return labels
