"""`manage.py signcard`: sign a product or order card as the mall does (a helper, not the check)."""

import sys
import time

import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.cards import MAX_LIFETIME_SECONDS, card_link_value, card_sign
from imchat.errors import AppError


class Command(BaseCommand):
    help = ("Read a card (JSON: kind product or order, and its fields) on stdin; print it signed with "
            "IM_MALL_API_KEY, on one line (--link: the chat page's `card` query value instead).")

    def add_arguments(self, parser):
        parser.add_argument("--expires-in", type=int, default=24 * 3600,
                            help=f"seconds the card stays valid (default 86400, at most {MAX_LIFETIME_SECONDS})")
        parser.add_argument("--link", action="store_true",
                            help="print the base64url value for /chat/?shop=<id>&card=<value>")

    def handle(self, *args, expires_in, link, **options):
        if not settings.IM_MALL_API_KEY:
            raise CommandError("IM_MALL_API_KEY is not set: cards are disabled")
        if not 0 < expires_in <= MAX_LIFETIME_SECONDS:
            raise CommandError(f"--expires-in: 1 to {MAX_LIFETIME_SECONDS} seconds")
        try:
            card = orjson.loads(sys.stdin.buffer.read())
        except orjson.JSONDecodeError as error:
            raise CommandError(f"stdin: not JSON ({error})") from None
        if not isinstance(card, dict):
            raise CommandError("stdin: a JSON object")
        try:
            signed = card_sign(card, key=settings.IM_MALL_API_KEY, expires=int(time.time()) + expires_in)
        except AppError as error:
            raise CommandError(error.msg) from None
        self.stdout.write(card_link_value(signed) if link else orjson.dumps(signed).decode())
