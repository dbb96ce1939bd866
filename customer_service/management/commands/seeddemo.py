from datetime import time, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import user_create
from chat import ids
from chat.groups import group_create
from chat.inputs import read_send
from chat.models import ChatGroup, Conversation
from chat.protocol import Caller
from chat.sending import send_many
from customer_service import canned, desk, ratings, services
from customer_service.demo import DEMO_SHOP_ID, demo_card_links
from customer_service.hours import Interval
from customer_service.models import QuickReply, ServiceAgent, ServiceSession, Shop, ShopLabel
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
# DEMO_SHOP_ID (customer_service/demo.py) is always open (no business hours): the demo answers at any time.
# A second shop with business hours and a greeting (edit them in the admin or PUT /api/v1/shops/2/hours/).
HOURS_SHOP_ID = 2
HOURS_SHOP_TIMEZONE = "Asia/Shanghai"
HOURS_SHOP_WEEK = [(day, time(9), time(18)) for day in range(5)] + [(5, time(10), time(16))]
HOURS_SHOP_GREETING = "Welcome to Night Owl Books! Ben will be with you in a moment."
DEMO_GROUP = "Demo group"
# bob's earlier conversations with the shop, rated (the dashboard's satisfaction panel, the workspace's
# customer panel, and a history the queue ETA learns from): agent, hours ago, minutes handled, score, comment.
DEMO_RATED_SESSIONS = [
    ("ben", 3, 6, 4, "Helpful, though I waited a bit."),
    ("amy", 1, 4, 5, "Fast and friendly, thank you!"),
]
DEMO_QUICK_REPLIES = [
    # title, /shortcut, text (the merchant edits them in the admin: Quick replies; agents type /shortcut)
    ("Greeting", "hi", ("Hello {customer_name}! Thanks for contacting {shop_name}, this is {agent_name}. "
                        "How can I help you today?")),
    ("Shipping", "ship", "Orders ship within 24 hours; delivery usually takes 2-3 days."),
    ("Returns", "return", ("You can return any item within 7 days of delivery. Shall I start a return for you, "
                           "{customer_name}?")),
    ("Goodbye", "bye", "Thank you for shopping with {shop_name}. Have a nice day!"),
]
# A past, closed conversation of carol's with the shop, for the workspace's search box to find
# (try "teapot", "退款" or "order:2024-001").
DEMO_CUSTOMER = ("carol", 1003, "Carol (past customer)")
DEMO_HISTORY = [
    ("carol", "Hello, my teapot arrived with a crack in the lid."),
    ("amy", "Sorry to hear that! Could you send your order number?"),
    ("carol", "[Order 2024-001] Green tea teapot x1, 36.00"),
    ("carol", "我想申请退款，谢谢"),
    ("amy", "Refund started for order 2024-001; you will see it in 3-5 days."),
]
DEMO_LABELS = [("VIP", "#7c3aed"), ("Refund", "#dc2626"), ("Delivery", "#0284c7"), ("Follow-up", "#d97706")]


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
        hours_shop = Shop.objects.filter(pk=HOURS_SHOP_ID).first()
        if hours_shop is None:
            hours_shop = services.shop_create(name="Night Owl Books", owner=users["merchant"], shop_id=HOURS_SHOP_ID)
            services.shop_hours_set(shop=hours_shop, timezone_name=HOURS_SHOP_TIMEZONE,
                                    intervals=[Interval(*row) for row in HOURS_SHOP_WEEK], closed_days=[],
                                    greeting=HOURS_SHOP_GREETING, base_url=default_base_url())
            services.agent_add(shop=hours_shop, user=users["ben"], status=ServiceAgent.Status.ONLINE,
                               base_url=default_base_url())
        if not ServiceSession.objects.filter(shop=shop, consumer=users["bob"]).exists():
            self._rated_sessions(shop, users)
        for order, (title, shortcut, text) in enumerate(DEMO_QUICK_REPLIES):
            reply = QuickReply.objects.filter(shop=shop, title=title).first()
            if reply is None:
                canned.reply_create(shop=shop, title=title, shortcut=shortcut, text=text, order=order)
            elif not reply.shortcut:  # a demo database from before shortcuts
                canned.reply_update(reply=reply, shortcut=shortcut, text=text)
        for name, color in DEMO_LABELS:
            if not ShopLabel.objects.filter(shop=shop, name=name).exists():
                desk.label_create(shop=shop, name=name, color=color)
        if not ChatGroup.objects.filter(owner=users["alice"], name=DEMO_GROUP, dissolved_at__isnull=True).exists():
            group_create(caller=Caller(user=users["alice"], base_url=default_base_url()), name=DEMO_GROUP,
                         uids=[users["bob"].pk, users["amy"].pk])
        self._demo_history(shop, users)
        port = settings.IM_PORT
        self.stdout.write(
            f"Demo data ready (password for every demo user: {DEMO_PASSWORD}).\n"
            f"  web:       open http://localhost:{port}/ and log in as alice in one window and as amy in a\n"
            f"             private window (one browser profile holds one login); the merchant's dashboard is at\n"
            f"             http://localhost:{port}/dashboard/\n"
            f"  consumers: alice (id {users['alice'].pk}), bob (id {users['bob'].pk})\n"
            f"  shop {shop.pk} '{shop.name}', owner merchant (admin: http://localhost:{port}/admin/), "
            f"agents amy and ben (online), contact guard '{shop.contact_guard}' (write 加我微信 abc_12345 as alice),\n"
            f"             a group '{DEMO_GROUP}' (alice, bob, amy), {len(DEMO_QUICK_REPLIES)} quick replies (type /hi in\n"
            f"             the workspace), {len(DEMO_LABELS)} labels and {len(DEMO_RATED_SESSIONS)} rated past conversations of bob's;\n"
            f"             carol's past conversation with the shop: search it in the workspace (\"teapot\", \"退款\")\n"
            f"  shop {hours_shop.pk} '{hours_shop.name}': business hours Mon-Fri 09:00-18:00, Sat 10:00-16:00 "
            f"({HOURS_SHOP_TIMEZONE}),\n             a greeting, agent ben (http://localhost:{port}/chat/?shop="
            f"{hours_shop.pk})\n"
            f"{self._cards_line(port)}"
            f"  token:     .venv/bin/python manage.py mintoken alice\n"
            f"  socket:    ws://localhost:{port}/?token=<token>\n"
            f"  login:     curl -s localhost:{port}/login -H 'content-type: application/json' "
            f"-d '{{\"username\":\"alice\",\"password\":\"{DEMO_PASSWORD}\"}}'"
        )

    def _rated_sessions(self, shop: Shop, users: dict[str, User]) -> None:
        """bob wrote, the session closed, then he rated it: through the real services, the session's
        agent and times then set back to the hours ago the demo tells."""
        bob = Caller(user=users["bob"], base_url=default_base_url())
        now = timezone.now()
        for agent, hours_ago, minutes, score, comment in DEMO_RATED_SESSIONS:
            services.consumer_message_send(caller=bob, shop_id=shop.pk, msg_type=1, client_msg_id=None,
                                           msg=f"Question from {hours_ago} hours ago: where is my parcel?")
            session = ServiceSession.objects.select_related("conversation").get(
                shop=shop, consumer=bob.user, state__in=[ServiceSession.State.QUEUED, ServiceSession.State.OPEN])
            services.session_close(session=session, now=now)
            assigned = now - timedelta(hours=hours_ago)
            ended = assigned + timedelta(minutes=minutes)
            ServiceSession.objects.filter(pk=session.pk).update(
                agent=users[agent], created_at=assigned, queued_at=assigned, assigned_at=assigned,
                first_response_at=assigned + timedelta(seconds=30), last_activity_at=ended, closed_at=ended)
            ratings.session_rate(consumer=bob.user, session_id=session.pk, score=score, comment=comment)
    def _demo_history(self, shop: Shop, users: dict[str, User]) -> None:
        """carol's closed conversation with the shop, written once through the real send path."""
        username, user_id, nickname = DEMO_CUSTOMER
        carol = User.objects.filter(username=username).first() or user_create(
            username=username, user_id=user_id, nickname=nickname, password=DEMO_PASSWORD)
        chat_id = ids.service_chat_id(shop.pk, carol.pk)
        if Conversation.objects.filter(chat_id=chat_id).exists():
            return
        base_url = default_base_url()
        for author, text in DEMO_HISTORY:
            if author == username:
                content = {"chat_type": 4, "msg_type": 1, "msg": text, "to_uid": shop.pk, "chat_id": ""}
            else:
                content = {"chat_type": 4, "msg_type": 1, "msg": text, "to_uid": carol.pk, "chat_id": chat_id,
                           "shop_id": shop.pk, "role_type": "service"}
            send_many([(Caller(user=users.get(author, carol), base_url=base_url), read_send(content))])
        session = ServiceSession.objects.filter(conversation__chat_id=chat_id).exclude(
            state=ServiceSession.State.CLOSED).first()
        if session is not None:
            services.session_close(session=session, now=timezone.now())
