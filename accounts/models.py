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
