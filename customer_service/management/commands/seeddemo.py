from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from accounts.services import user_create
from customer_service import services
from customer_service.models import ServiceAgent, Shop
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
DEMO_SHOP_ID = 1


class Command(BaseCommand):
    help = "Create the demo users, a shop with two online agents (idempotent), and say how to log in."

    @transaction.atomic
    def handle(self, *args, **options):
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
        port = settings.IM_PORT
        self.stdout.write(
            f"Demo data ready (password for every demo user: {DEMO_PASSWORD}).\n"
            f"  consumers: alice (id {users['alice'].pk}), bob (id {users['bob'].pk})\n"
            f"  shop {shop.pk} '{shop.name}', owner merchant (admin: http://localhost:{port}/admin/), "
            f"agents amy and ben (online)\n"
            f"  token:     .venv/bin/python manage.py mintoken alice\n"
            f"  socket:    ws://localhost:{port}/?token=<token>\n"
            f"  login:     curl -s localhost:{port}/login -H 'content-type: application/json' "
            f"-d '{{\"username\":\"alice\",\"password\":\"{DEMO_PASSWORD}\"}}'"
        )
