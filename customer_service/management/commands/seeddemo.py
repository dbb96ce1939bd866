from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from accounts.services import user_create
from chat.groups import group_create
from chat.models import ChatGroup
from chat.protocol import Caller
from customer_service import services
from customer_service.demo import DEMO_SHOP_ID, demo_card_links
from customer_service.models import QuickReply, ServiceAgent, Shop
from imchat.links import default_base_url

DEMO_PASSWORD = "imchat-demo"
DEMO_USERS = [
    # username, id, nickname, staff
    ("alice", 1001, "Alice (consumer)", False),
    ("bob", 1002, "Bob (consumer)", False),
    ("merchant", 2001, "Demo merchant", True),
    ("amy", 2002, "Amy (agent)", False),
    ("ben", 2003, "Ben (agent)", False),
]
DEMO_GROUP = "Demo group"
DEMO_QUICK_REPLIES = [
    # title, text (the merchant edits them in the admin: Quick replies)
    ("Greeting", "Hello! Thanks for contacting Demo Shop. How can I help you today?"),
    ("Shipping", "Orders ship within 24 hours; delivery usually takes 2-3 days."),
    ("Returns", "You can return any item within 7 days of delivery. Shall I start a return for you?"),
    ("Goodbye", "Thank you for shopping with us. Have a nice day!"),
]


class Command(BaseCommand):
    help = "Create the demo users, a shop with two online agents (idempotent), and say how to log in."

    @staticmethod
    def _cards_line(port: int) -> str:
        links = demo_card_links(f"http://localhost:{port}")
        if links is None:  # no IM_MALL_API_KEY: cards are disabled
            return ""
        return ("  cards:     a product card for alice to ask about (signed with the development mall key, valid 24 h):\n"
                f"             {links['product']}\n"
                "             the home page offers fresh ones (and an order card for amy's workspace)\n")

    @transaction.atomic
    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seeddemo makes accounts whose password is published in the README (a staff "
                               "merchant among them): it runs only on a development server (DJANGO_DEBUG=1)")
        users = {}
        for username, user_id, nickname, staff in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = user_create(username=username, user_id=user_id, nickname=nickname, password=DEMO_PASSWORD,
                                   is_staff=staff)
            users[username] = user
        shop = Shop.objects.filter(pk=DEMO_SHOP_ID).first() or services.shop_create(
            name="Demo Shop", owner=users["merchant"], shop_id=DEMO_SHOP_ID
        )
        for username in ("amy", "ben"):
            if not ServiceAgent.objects.filter(shop=shop, user=users[username]).exists():
                services.agent_add(shop=shop, user=users[username], status=ServiceAgent.Status.ONLINE,
                                   base_url=default_base_url())
        for order, (title, text) in enumerate(DEMO_QUICK_REPLIES):
            QuickReply.objects.get_or_create(shop=shop, title=title, defaults={"text": text, "order": order})
        if not ChatGroup.objects.filter(owner=users["alice"], name=DEMO_GROUP, dissolved_at__isnull=True).exists():
            group_create(caller=Caller(user=users["alice"], base_url=default_base_url()), name=DEMO_GROUP,
                         uids=[users["bob"].pk, users["amy"].pk])
        port = settings.IM_PORT
        self.stdout.write(
            f"Demo data ready (password for every demo user: {DEMO_PASSWORD}).\n"
            f"  web:       open http://localhost:{port}/ and log in as alice in one window and as amy in a\n"
            f"             private window (one browser profile holds one login); the merchant's dashboard is at\n"
            f"             http://localhost:{port}/dashboard/\n"
            f"  consumers: alice (id {users['alice'].pk}), bob (id {users['bob'].pk})\n"
            f"  shop {shop.pk} '{shop.name}', owner merchant (admin: http://localhost:{port}/admin/), "
            f"agents amy and ben (online),\n"
            f"             a group '{DEMO_GROUP}' (alice, bob, amy) and {len(DEMO_QUICK_REPLIES)} quick replies\n"
            f"{self._cards_line(port)}"
            f"  token:     .venv/bin/python manage.py mintoken alice\n"
            f"  socket:    ws://localhost:{port}/?token=<token>\n"
            f"  login:     curl -s localhost:{port}/login -H 'content-type: application/json' "
            f"-d '{{\"username\":\"alice\",\"password\":\"{DEMO_PASSWORD}\"}}'"
        )
