"""Product and order cards: what only the mall can vouch for, checked before anything is stored.

The mall signs a card with IM_MALL_API_KEY (docs/PROTOCOL-EXT.md, "Product and order cards"):

    sig = hex HMAC-SHA256(key, "<kind>.<expires>.<canonical JSON of the fields>")

The fields are the card without `kind`, `expires` and `sig`; canonical JSON has its keys sorted at
every level, no spaces, UTF-8 as is (orjson with OPT_SORT_KEYS). Prices are decimal strings with two
decimals ("129.00"), never floats, so every language writes the same bytes. A card verified here is
stored with its message (without `expires` and `sig`) and shown as one readable line of text, which
is all the original client sees.
"""

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from imchat.errors import bad_request

KINDS = ("product", "order")
MAX_LIFETIME_SECONDS = 7 * 24 * 3600  # a price signed today is not shown as current next month
TITLE_CHARS = 200
STATUS_CHARS = 32
URL_CHARS = 500
MAX_ITEMS = 50
MAX_QUANTITY = 99_999
CURRENCY = "¥"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_PRICE = re.compile(r"(0|[1-9][0-9]{0,9})\.[0-9]{2}")
_SIG = re.compile(r"[0-9a-f]{64}")
_URL = re.compile(r"https?://[^\s/?#\\]+[^\s\\]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Card:
    """A verified card: `shown` is what is stored, pushed and drawn; `text` the message's line."""

    shown: dict[str, Any]
    text: str
    json: str  # `shown` encoded once, for the store


def cards_enabled() -> bool:
    return bool(settings.IM_MALL_API_KEY)


def canonical(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def signature(*, key: str, kind: str, expires: int, fields: dict[str, Any]) -> str:
    signed = f"{kind}.{expires}.".encode() + canonical(fields)
    return hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()


def card_sign(card: dict[str, Any], *, key: str, expires: int) -> dict[str, Any]:
    """What the mall does (`manage.py signcard`, tests, the demo): the card with `expires` and `sig`.

    The card is checked as imchat will check it, so the mall learns of a mistake when signing."""
    kind = card.get("kind")
    fields = {name: value for name, value in card.items() if name != "kind"}
    _check_fields(kind, fields)
    return {**card, "expires": expires, "sig": signature(key=key, kind=kind, expires=expires, fields=fields)}


def card_read(raw: Any, *, now: float | None = None) -> Card:
    """The card of a chat.sendMsg, verified; AppError code 0 naming `card` when it is not the mall's."""
    key = settings.IM_MALL_API_KEY
    if not key:
        raise bad_request("card: cards are disabled on this server (IM_MALL_API_KEY is not set)")
    if not isinstance(raw, dict):
        raise bad_request("card: must be an object")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise bad_request("card.kind: must be product or order")
    expires = raw.get("expires")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise bad_request("card.expires: required, unix seconds")
    sig = raw.get("sig")
    if not isinstance(sig, str) or not _SIG.fullmatch(sig):
        raise bad_request("card.sig: required, 64 lowercase hex digits")
    fields = {name: value for name, value in raw.items() if name not in ("kind", "expires", "sig")}
    _check_fields(kind, fields)
    now = time.time() if now is None else now
    if expires <= now:
        raise bad_request("card.expires: the card has expired (ask the mall for a fresh one)")
    if expires > now + MAX_LIFETIME_SECONDS:
        raise bad_request("card.expires: at most 7 days ahead")
    expected = signature(key=key, kind=kind, expires=expires, fields=fields)
    if not hmac.compare_digest(expected, sig):
        raise bad_request("card.sig: does not match (not signed by the mall, or changed since)")
    shown = {"kind": kind, **fields}
    return Card(shown=shown, text=card_text(shown), json=orjson.dumps(shown).decode())


def card_text(shown: dict[str, Any]) -> str:
    """The one line the original client shows (and the conversation list, and search)."""
    with translation.override(settings.LANGUAGE_CODE):
        if shown["kind"] == "product":
            return gettext("[Product] {title} {currency}{price} {link}").format(currency=CURRENCY, **shown)
        return gettext("[Order {id}] {status}, total {currency}{total} {link}").format(currency=CURRENCY, **shown)


# --- The fields of each kind --------------------------------------------------------------------


def _check_fields(kind: Any, fields: dict[str, Any]) -> None:
    if kind not in KINDS:
        raise bad_request("card.kind: must be product or order")
    _check_object("card.", fields, _PRODUCT if kind == "product" else _ORDER, f"for a {kind} card")


def _check_object(prefix: str, value: dict[str, Any], spec: dict, whose: str) -> None:
    """Exactly the fields of `spec`, each checked: the first one wrong is named."""
    for name in value:
        if name not in spec:
            raise bad_request(f"{prefix}{name}: unknown field {whose}")
    for name, check in spec.items():
        if name not in value:
            raise bad_request(f"{prefix}{name}: required")
        check(f"{prefix}{name}", value[name])


def _refuse(path: str, what: str):
    raise bad_request(f"{path}: must be {what}")


def _id(path: str, value: Any) -> None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        _refuse(path, "1-64 letters, digits or . _ : - (a string)")


def _text(limit: int):
    def check(path: str, value: Any) -> None:
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            _refuse(path, f"a string of 1-{limit} characters")
        if _CONTROL.search(value):
            _refuse(path, "one line of text, no control characters")
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for it, so nothing to sign
            _refuse(path, "valid UTF-8 text")

    return check


def _price(path: str, value: Any) -> None:
    if not isinstance(value, str) or not _PRICE.fullmatch(value):
        _refuse(path, 'a decimal string with two decimals, e.g. "129.00"')


def _url(path: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > URL_CHARS or not _URL.fullmatch(value) or _CONTROL.search(value):
        _refuse(path, f"an absolute http(s) URL of at most {URL_CHARS} characters")


def _quantity(path: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_QUANTITY:
        _refuse(path, f"an integer from 1 to {MAX_QUANTITY}")


_ITEM = {"title": _text(TITLE_CHARS), "quantity": _quantity, "price": _price}


def _items(path: str, value: Any) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ITEMS:
        _refuse(path, f"a list of 1-{MAX_ITEMS} items")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            _refuse(f"{path}[{index}]", "an object {title, quantity, price}")
        _check_object(f"{path}[{index}].", item, _ITEM, "(items have title, quantity, price)")


_PRODUCT = {"id": _id, "title": _text(TITLE_CHARS), "price": _price, "image": _url, "link": _url}
_ORDER = {"id": _id, "status": _text(STATUS_CHARS), "total": _price, "items": _items, "link": _url}


# --- Handing a card to the chat page (/chat/?shop=<id>&card=<value>) ----------------------------

LINK_VALUE_CHARS = 8000


def card_link_value(signed: dict[str, Any]) -> str:
    """The signed card as the page's `card` query value: base64url of its JSON, without padding."""
    return base64.urlsafe_b64encode(orjson.dumps(signed)).rstrip(b"=").decode()


def card_from_link_value(value: str) -> dict[str, Any]:
    """The signed card a page link carries (not yet verified: card_read does that)."""
    if len(value) > LINK_VALUE_CHARS:
        raise bad_request(f"card: at most {LINK_VALUE_CHARS} characters")
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise bad_request("card: not base64url of a JSON object") from None
    if not isinstance(raw, dict):
        raise bad_request("card: not base64url of a JSON object")
    return raw
