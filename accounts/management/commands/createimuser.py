from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from accounts import services


class Command(BaseCommand):
    help = "Create a chat user; prints the new user id alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--id", type=int, dest="user_id", help="Use this id (the mall's user id)")
        parser.add_argument("--nickname", default="")
        parser.add_argument("--avatar", default="")
        parser.add_argument("--password", default=None)
        parser.add_argument("--staff", action="store_true", help="May log in to the admin")

    def handle(self, *args, username, user_id, nickname, avatar, password, staff, **options):
        try:
            user = services.user_create(
                username=username, user_id=user_id, nickname=nickname or username, avatar=avatar,
                password=password, is_staff=staff,
            )
        except IntegrityError:
            raise CommandError(f"user {username!r} or id {user_id} already exists") from None
        self.stdout.write(str(user.pk))
