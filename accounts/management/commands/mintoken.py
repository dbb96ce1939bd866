from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import User
from accounts.tokens import token_mint


class Command(BaseCommand):
    help = "Print a JWT for a user (username or id), nothing else."

    def add_arguments(self, parser):
        parser.add_argument("user", help="username or id")
        parser.add_argument("--ttl", type=int, default=None, help="seconds until it expires")

    def handle(self, *args, user, ttl, **options):
        try:
            found = services.user_by_name_or_id(user)
        except User.DoesNotExist as error:
            raise CommandError(str(error)) from None
        self.stdout.write(token_mint(user_id=found.pk, ttl=ttl))
