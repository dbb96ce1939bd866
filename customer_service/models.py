"""Shops, their service agents, and the state of each customer-service session."""

from django.conf import settings
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models


MAX_OFFLINE_NOTIFY_MINUTES = 1440

DEFAULT_OUT_OF_HOURS_MESSAGE = (
    "We are closed right now and open again {next_opening}. Leave a message and we will answer then."
)


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
    # Business hours (customer_service/hours.py): no ShopHours rows means always open.
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA time zone of the shop's hours")
    greeting = models.CharField(max_length=500, blank=True,
                                help_text="Sent to a customer who starts a conversation in hours; blank: none")
    out_of_hours_message = models.CharField(
        max_length=500, default=DEFAULT_OUT_OF_HOURS_MESSAGE,
        help_text="Sent once per session outside the hours; {next_opening} becomes the next opening time",
    )
    # Flag by default: nothing a customer writes is changed unasked, and the shop still sees it.
    contact_guard = models.CharField(
        max_length=4, choices=ContactGuard.choices, default=ContactGuard.FLAG,
        help_text="Contacts (phone, WeChat, QQ, e-mail, outside links) in customer-service messages",
    )
    # The mall's `notification.offline` webhook (customer_service/offline.py): at most one per this
    # many minutes per conversation and receiver; 0: none for this shop.
    offline_notify_minutes = models.PositiveSmallIntegerField(
        default=10, validators=[MaxValueValidator(MAX_OFFLINE_NOTIFY_MINUTES)],
        help_text="A customer or agent with no connection hears of a new message through the mall (a webhook) "
                  "at most once per this many minutes per conversation; 0: never",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} (shop {self.pk})"


class ShopHours(models.Model):
    """One weekly interval a shop is open, in the shop's time zone (closes <= opens: the next day)."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0
        TUESDAY = 1
        WEDNESDAY = 2
        THURSDAY = 3
        FRIDAY = 4
        SATURDAY = 5
        SUNDAY = 6

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField(help_text="At or before the opening time: the next day (22:00-02:00)")

    class Meta:
        ordering = ["shop", "weekday", "opens"]
        verbose_name = "opening hours"
        verbose_name_plural = "opening hours"

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"


class ShopClosedDay(models.Model):
    """A date the shop stays closed (a holiday): its intervals starting that day do not open."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="closed_days")
    date = models.DateField()
    note = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["shop", "date"]
        constraints = [models.UniqueConstraint(fields=["shop", "date"], name="closed_day_unique_per_shop")]

    def __str__(self) -> str:
        return f"{self.date} {self.note}".strip()


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
    # The first assignment (assigned_at moves with each transfer): the queue wait of reports.
    first_assigned_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField()
    offline_notice_at = models.DateTimeField(null=True, blank=True)
    # The consumer's rating once the session is closed (CSAT, customer_service/ratings.py): on the
    # session itself, not a model of its own, since there is exactly one per session and reports,
    # the admin and the workspace read it with the session (no join); "rated once" is one
    # conditional UPDATE (`rating IS NULL`).
    rating = models.PositiveSmallIntegerField(null=True, blank=True, choices=[(n, "★" * n) for n in range(1, 6)])
    rating_comment = models.CharField(max_length=500, blank=True)
    rated_at = models.DateTimeField(null=True, blank=True)
    # Set when the shop's out-of-hours message went out (once per session): it waits for the opening.
    out_of_hours_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"], condition=~models.Q(state="closed"), name="session_one_live_per_chat"
            ),
            models.CheckConstraint(condition=models.Q(rating__isnull=True) | models.Q(rating__gte=1, rating__lte=5),
                                   name="session_rating_1_to_5"),
        ]
        indexes = [
            models.Index(fields=["shop", "state", "queued_at"], name="session_queue"),
            models.Index(fields=["agent", "state"], name="session_agent_load"),
            # The reports over a date range (customer_service/periods.py) read these three without
            # touching the table on PostgreSQL (index-only scans; INCLUDE is ignored on SQLite).
            models.Index(fields=["shop", "rated_at"], include=["rating", "agent"], name="session_rated"),
            models.Index(fields=["shop", "closed_at"], include=["created_at", "agent"], name="session_closed"),
            models.Index(fields=["shop", "created_at"],
                         include=["first_response_at", "first_assigned_at", "agent"], name="session_started"),
            # queue lengths of all shops for /metrics (imchat/metrics.py): the queued sessions only
            models.Index(fields=["shop"], condition=models.Q(state="queued"), name="session_queued"),
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
    shortcut = models.SlugField(max_length=32, blank=True,
                                help_text="Typed as /shortcut in the workspace's reply box (letters, digits, - and _)")
    text = models.TextField(max_length=2000, help_text="May say {customer_name}, {shop_name} and {agent_name}")
    order = models.PositiveIntegerField(default=0, help_text="Smaller numbers come first")

    class Meta:
        ordering = ["shop", "order", "pk"]
        verbose_name_plural = "quick replies"
        constraints = [models.UniqueConstraint(fields=["shop", "shortcut"], condition=~models.Q(shortcut=""),
                                               name="quick_reply_shortcut_unique_per_shop")]

    def __str__(self) -> str:
        return self.title


class WebhookDelivery(models.Model):
    """One event for the mall's webhook, kept until delivered (or given up on): a restart loses none."""

    class Event(models.TextChoices):
        SESSION_CREATED = "session.created", "a new customer-service session"
        SESSION_QUEUED = "session.queued", "a session waits in the shop's queue"
        SESSION_ASSIGNED = "session.assigned", "a session reached an agent (routing, the queue, a claim)"
        SESSION_TRANSFERRED = "session.transferred", "a session was handed to another agent"
        SESSION_CLOSED = "session.closed", "a session ended"
        SESSION_RATED = "session.rated", "a consumer rated a closed session"
        MESSAGE_CREATED = "message.created", "a customer-service message, either side"
        MESSAGE_UNATTENDED = "message.unattended", "a consumer's message while no agent is online"
        MESSAGE_FLAGGED = "message.flagged", "a message with a contact in it (the shop's contact guard: flag)"
        NOTIFICATION_OFFLINE = "notification.offline", "a message for someone with no live connection"

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
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="webhook_due"),
                   models.Index(fields=["-created_at"], name="webhook_newest")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One try at a delivery, as the mall answered it (the admin shows them under the delivery)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField(help_text="X-Imchat-Attempt")
    at = models.DateTimeField()
    status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status; empty: no answer")
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number", "pk"]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status or self.error[:40]}"


class OfflineNotification(models.Model):
    """The last `notification.offline` of one receiver in one conversation: the debounce.

    Written in the transaction of the message it reports (one upsert per batch), so a rolled-back
    message leaves no mark, and every process and restart sees the same window.
    """

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="+")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    msg_id = models.BigIntegerField(help_text="the message last reported")
    seq = models.PositiveBigIntegerField()
    read_seq = models.PositiveBigIntegerField(help_text="the receiver's read marker when it was reported")
    unread = models.PositiveIntegerField(default=0)
    notified_at = models.DateTimeField()
    quiet_until = models.BigIntegerField(help_text="unix seconds: no other report before this unless read meanwhile")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["conversation", "recipient"],
                                               name="offline_notification_one_per_receiver")]

    def __str__(self) -> str:
        return f"user {self.recipient_id} in {self.conversation_id} (seq {self.seq})"


class ShopLabel(models.Model):
    """A tag the shop's agents put on sessions ("refund", "VIP"); each shop keeps its own set."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=32)
    color = models.CharField(max_length=7, default="#64748b", help_text="#rrggbb",
                             validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour as #rrggbb.")])
    sessions = models.ManyToManyField(ServiceSession, blank=True, related_name="labels")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["shop", "name", "pk"]
        constraints = [models.UniqueConstraint(fields=["shop", "name"], name="label_unique_per_shop")]

    def __str__(self) -> str:
        return self.name


class SessionNote(models.Model):
    """A private note of the shop side on a session: never a Message, so the consumer's history,
    sync and lists cannot carry it."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(ServiceSession, on_delete=models.CASCADE, related_name="notes")
    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="note_by_conversation")]

    def __str__(self) -> str:
        return self.text if len(self.text) <= 60 else self.text[:59] + "…"


class ReportDay(models.Model):
    """A day whose report figures are kept in ReportFigures (customer_service/periods.py): `scope` a
    shop's id, or 0 for every shop at once; `zone` the days' time zone."""

    scope = models.BigIntegerField()
    zone = models.CharField(max_length=64)
    day = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "zone", "day"], name="report_day_unique")]


class ReportTotals(models.Model):
    """Report figures kept for a shop and agent over a day (ReportFigures) or a month
    (ReportMonthFigures): sums that add up across rows, the row's p50/p90, and the histograms of
    durations (customer_service/histograms.py) that give percentiles over several rows."""

    sessions_started = models.IntegerField(default=0)
    sessions_answered = models.IntegerField(default=0)
    sessions_closed = models.IntegerField(default=0)
    ratings = models.IntegerField(default=0)
    rating_sum = models.IntegerField(default=0)
    messages_customer = models.IntegerField(default=0)
    messages_agent = models.IntegerField(default=0)
    first_response_p50 = models.FloatField(null=True)
    first_response_p90 = models.FloatField(null=True)
    resolution_p50 = models.FloatField(null=True)
    resolution_p90 = models.FloatField(null=True)
    queue_wait_p50 = models.FloatField(null=True)
    queue_wait_p90 = models.FloatField(null=True)
    first_response_hist = models.TextField(default="")
    resolution_hist = models.TextField(default="")
    queue_wait_hist = models.TextField(default="")

    class Meta:
        abstract = True


class ReportFigures(ReportTotals):
    """A finished day's report figures of one shop and agent (agent_key 0: no agent; -1: the whole
    shop, with its customers' messages and the day's own exact percentiles)."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+", db_index=False)
    zone = models.CharField(max_length=64)
    day = models.DateField()
    agent_key = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "zone", "day", "agent_key"],
                                               name="report_figures_unique")]
        indexes = [models.Index(fields=["zone", "day"], name="report_figures_day")]


class ReportMonth(models.Model):
    """A month whose days' figures are summed in ReportMonthFigures (scope and zone as ReportDay's;
    `month` its first day)."""

    scope = models.BigIntegerField()
    zone = models.CharField(max_length=64)
    month = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "zone", "month"], name="report_month_unique")]


class ReportMonthFigures(ReportTotals):
    """A kept month of one shop and agent (agent_key as ReportFigures'): its days' ReportFigures summed,
    so a report over a year adds up 12 rows per agent rather than 365. Its p50/p90 are the day's own
    when the agent has one day in the month, else read from the summed histograms."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+", db_index=False)
    zone = models.CharField(max_length=64)
    month = models.DateField()
    agent_key = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "zone", "month", "agent_key"],
                                               name="report_month_figures_unique")]
        indexes = [models.Index(fields=["zone", "month"], name="report_month_figures_month")]
