"""Shops, their service agents, and the state of each customer-service session."""

from django.conf import settings
from django.db import models


class Shop(models.Model):
    class Strategy(models.TextChoices):
        LEAST_BUSY = "least_busy", "least busy (fewest open sessions)"
        ROUND_ROBIN = "round_robin", "round robin"
        RANDOM = "random", "random"

    class ContactGuard(models.TextChoices):
        """What a phone number, WeChat/QQ id, e-mail or outside link in a message does
        (customer_service/contact_guard.py finds them)."""

        OFF = "off", "off: nothing"
        FLAG = "flag", "flag: delivered as written; the shop's agents and owner are warned"
        MASK = "mask", "mask: the contact is replaced by *** for everyone"

    # Settable ids: the mall's shop 2 is our shop 2.
    id = models.BigAutoField(primary_key=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="shops")
    name = models.CharField(max_length=64)
    logo = models.CharField(max_length=500, blank=True, help_text="Absolute URL or a path under this server")
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.LEAST_BUSY)
    offline_notice = models.CharField(
        max_length=500,
        default="Our agents are away right now. Leave a message and we will reply as soon as we are back.",
    )
    # Flag by default: nothing a customer writes is changed unasked, and the shop still sees it.
    contact_guard = models.CharField(
        max_length=4, choices=ContactGuard.choices, default=ContactGuard.FLAG,
        help_text="Contacts (phone, WeChat, QQ, e-mail, outside links) in customer-service messages",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} (shop {self.pk})"


class ServiceAgent(models.Model):
    class Status(models.TextChoices):
        ONLINE = "online"
        BUSY = "busy"
        OFFLINE = "offline"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="agents")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_roles")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OFFLINE)
    max_sessions = models.PositiveIntegerField(default=10)
    status_changed_at = models.DateTimeField(auto_now_add=True)
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "user"], name="agent_unique_per_shop")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.shop}"


class ServiceSession(models.Model):
    """One episode of a consumer's conversation with a shop: queued -> open -> closed.

    A conversation has at most one live (queued or open) session; a closed one reopens as a new
    session on the consumer's next message.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        OPEN = "open"
        CLOSED = "closed"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="sessions")
    consumer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="service_sessions")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=8, choices=State.choices)
    # Messages of this session are those with seq >= first_seq (the backlog an agent gets).
    first_seq = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField()
    offline_notice_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"], condition=~models.Q(state="closed"), name="session_one_live_per_chat"
            ),
        ]
        indexes = [
            models.Index(fields=["shop", "state", "queued_at"], name="session_queue"),
            models.Index(fields=["agent", "state"], name="session_agent_load"),
        ]

    def __str__(self) -> str:
        return f"session {self.pk} {self.conversation_id} ({self.state})"


class Assignment(models.Model):
    """Why a session reached an agent, kept so a merchant can see it."""

    class Reason(models.TextChoices):
        STICKY = "sticky", "kept by the session's agent"
        LAST_AGENT = "last_agent", "the agent who served this customer last"
        STRATEGY = "strategy", "picked by the shop's strategy"
        QUEUE = "queue", "assigned from the queue"
        TRANSFER = "transfer", "transferred by an agent"
        CLAIM = "claim", "claimed by the replying agent"

    session = models.ForeignKey(ServiceSession, on_delete=models.CASCADE, related_name="assignments")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=12, choices=Reason.choices)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.agent} ({self.reason})"


class QuickReply(models.Model):
    """A canned answer the merchant keeps for the shop's agents (inserted into the reply box)."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="quick_replies")
    title = models.CharField(max_length=64)
    text = models.TextField(max_length=2000)
    order = models.PositiveIntegerField(default=0, help_text="Smaller numbers come first")

    class Meta:
        ordering = ["shop", "order", "pk"]
        verbose_name_plural = "quick replies"

    def __str__(self) -> str:
        return self.title


class WebhookDelivery(models.Model):
    """One event for the mall's webhook, kept until delivered (or given up on): a restart loses none."""

    class Event(models.TextChoices):
        SESSION_CREATED = "session.created", "a new customer-service session"
        MESSAGE_UNATTENDED = "message.unattended", "a consumer's message while no agent is online"
        MESSAGE_FLAGGED = "message.flagged", "a message with a contact in it (the shop's contact guard: flag)"

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed", "failed (gave up)"

    delivery_id = models.CharField(max_length=40, unique=True, help_text="X-Imchat-Delivery: the mall dedupes by it")
    event = models.CharField(max_length=32, choices=Event.choices)
    body = models.TextField(help_text="The exact JSON sent, and signed, on every attempt")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status of the last attempt")
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="webhook_due")]

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id} ({self.state})"
