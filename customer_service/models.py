"""Shops, their service agents, and the state of each customer-service session."""

from django.conf import settings
from django.db import models


class Shop(models.Model):
    class Strategy(models.TextChoices):
        LEAST_BUSY = "least_busy", "least busy (fewest open sessions)"
        ROUND_ROBIN = "round_robin", "round robin"
        RANDOM = "random", "random"

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
