"""The IM user: a Django user whose id usually comes from the mall."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    # Ids are settable (createimuser --id, mall sync): the mall's user 7 is our user 7.
    id = models.BigAutoField(primary_key=True)
    nickname = models.CharField(max_length=64, blank=True)
    avatar = models.CharField(max_length=500, blank=True, help_text="Absolute URL or a path under this server")
    sign = models.CharField("signature", max_length=200, blank=True)

    @property
    def display_name(self) -> str:
        return self.nickname or self.username

    def __str__(self) -> str:
        return f"{self.display_name} (#{self.pk})"


class Erasure(models.Model):
    """The audit line an erased user leaves (`manage.py eraseuser`): who, when, by whom, how much.
    It names the user by id only: their profile is gone."""

    user_id = models.BigIntegerField(db_index=True)
    erased_at = models.DateTimeField()
    by = models.CharField(max_length=150, help_text="Who asked for it (the operator running the command)")
    reason = models.CharField(max_length=200, blank=True)
    messages = models.PositiveIntegerField(default=0)
    conversations = models.PositiveIntegerField(default=0, help_text="Conversation summaries rewritten")
    files = models.PositiveIntegerField(default=0, help_text="Uploaded images deleted")

    class Meta:
        ordering = ["-erased_at"]

    def __str__(self) -> str:
        return f"user #{self.user_id} erased {self.erased_at:%Y-%m-%d %H:%M} by {self.by}"
