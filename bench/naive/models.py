"""The naive baseline's one table: every message, one row."""

from django.db import models


class NaiveMessage(models.Model):
    sender_id = models.BigIntegerField()
    receiver_id = models.BigIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
