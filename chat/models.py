"""Conversations, each party's view of one, and the messages in it.

Unread counts are derived (`last_seq - last_read_seq`), so a message never updates one row per
member; the sender's row moves its read marker, the others only reappear if they were hidden.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ChatType(models.IntegerChoices):
    PRIVATE = 1, "private"
    GROUP = 2, "group"
    SYSTEM = 3, "system notice"
    SERVICE = 4, "customer service"


class MsgType(models.IntegerChoices):
    TEXT = 1, "text"
    IMAGE = 2, "image"


class SentAs(models.IntegerChoices):
    USER = 0, "user"
    SERVICE = 1, "agent for the shop"
    SYSTEM = 2, "platform or shop notice"


class ChatGroup(models.Model):
    name = models.CharField(max_length=64)
    avatar = models.CharField(max_length=500, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_groups")
    created_at = models.DateTimeField(auto_now_add=True)
    dissolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} (g{self.pk})"


class Conversation(models.Model):
    chat_id = models.CharField(max_length=64, unique=True)
    chat_type = models.PositiveSmallIntegerField(choices=ChatType.choices)
    # Display of the non-user party (group name / shop name and logo), kept current by the
    # services that rename groups and shops, so lists and pushes need no cross-app join.
    title = models.CharField(max_length=64, blank=True)
    avatar = models.CharField(max_length=500, blank=True)
    shop_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    group = models.OneToOneField(ChatGroup, null=True, blank=True, on_delete=models.CASCADE)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_msg = models.CharField(max_length=255, blank=True)
    last_msg_type = models.PositiveSmallIntegerField(choices=MsgType.choices, default=MsgType.TEXT)
    last_uid = models.BigIntegerField(default=0)
    last_time = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.chat_id


class Participant(models.Model):
    """One party's view of a conversation (the original's `bs_chat` row).

    `user` is null for the shop side of a customer-service conversation, which all the shop's
    agents share (`shop_id` says which shop).
    """

    class Role(models.TextChoices):
        MEMBER = "member"
        ADMIN = "admin"
        OWNER = "owner"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="participations"
    )
    shop_id = models.BigIntegerField(null=True, blank=True)
    # The other party when it is a user (private chat; the consumer, seen from the shop side).
    peer_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    last_read_seq = models.PositiveBigIntegerField(default=0)
    # History visible to this party: seq in (joined_seq, left_seq].
    joined_seq = models.PositiveBigIntegerField(default=0)
    left_seq = models.PositiveBigIntegerField(null=True, blank=True)
    hidden = models.BooleanField(default=False)
    muted = models.BooleanField(default=False, help_text="A group member the owner or an admin silenced")
    kicked = models.BooleanField(default=False, help_text="Removed by the owner or an admin, who alone may invite back")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "user"], condition=Q(user__isnull=False), name="participant_unique_user"
            ),
            models.UniqueConstraint(
                fields=["conversation", "shop_id"], condition=Q(user__isnull=True), name="participant_unique_shop_side"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "hidden"], name="participant_user_list"),
            models.Index(fields=["shop_id", "hidden"], condition=Q(user__isnull=True), name="participant_shop_list"),
        ]

    def __str__(self) -> str:
        side = f"user {self.user_id}" if self.user_id else f"shop {self.shop_id}"
        return f"{self.conversation_id} as {side}"


class Message(models.Model):
    # No index of its own: message_unique_seq (conversation, seq) leads with it and serves every
    # lookup by conversation; a second index was one more B-tree insert for every message stored.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages",
                                     db_index=False)
    seq = models.PositiveBigIntegerField()
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_as = models.PositiveSmallIntegerField(choices=SentAs.choices, default=SentAs.USER)
    chat_type = models.PositiveSmallIntegerField(choices=ChatType.choices)
    msg_type = models.PositiveSmallIntegerField(choices=MsgType.choices)
    msg = models.TextField()
    to_uid = models.BigIntegerField(default=0)
    shop_id = models.BigIntegerField(null=True, blank=True)
    client_msg_id = models.CharField(max_length=64, null=True, blank=True)
    # A product or order card the mall signed (chat/cards.py), as verified; `msg` is its line of text.
    card = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)
    recalled_at = models.DateTimeField(null=True, blank=True)
    # What the contact guard found in it ("phone,wechat"), when the shop flags contacts; kept with
    # the message so history and lists need no join. The store's raw SQL leaves it to db_default.
    guard_kinds = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_unique_seq"),
            models.UniqueConstraint(
                fields=["sender", "client_msg_id"],
                condition=Q(client_msg_id__isnull=False),
                name="message_unique_client_msg_id",
            ),
        ]
        indexes = [
            # A shop's customer-service messages newest first (search; PostgreSQL also has a pg_trgm
            # index on UPPER(msg) for these rows, made in migration 0003: customer_service/search.py).
            # It carries who wrote each message, so the reports count messages per day and agent from
            # the index alone (customer_service/periods.py).
            models.Index(fields=["shop_id", "created_at"], include=["sent_as", "sender"], condition=Q(chat_type=4),
                         name="message_service_recent"),
            # The shop's flagged messages, newest first: only flagged rows are in it.
            models.Index(fields=["shop_id", "-id"], condition=~Q(guard_kinds=""), name="message_flagged"),
        ]

    @property
    def from_uid(self) -> int:
        return self.sender_id or 0

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq}"


class Notice(models.Model):
    """A system notice as the platform sent it; its copies are messages in the recipients' boxes.

    A notice to everyone is stored once, in the shared announcements box (`sys_0`).
    """

    class Audience(models.TextChoices):
        ALL = "all", "everyone"
        USER = "user", "one user"
        SHOP = "shop", "a shop's agents and owner"
        GROUP = "group", "a group's members"

    audience = models.CharField(max_length=8, choices=Audience.choices)
    target_id = models.BigIntegerField(null=True, blank=True)
    text = models.TextField()
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    recipients = models.PositiveIntegerField(default=0, help_text="Boxes it was stored in (1 for everyone)")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"notice {self.pk} to {self.get_audience_display()}"
