import getpass

from django.core.management.base import BaseCommand, CommandError

from accounts.erasure import ShopOwnerError, user_erase
from accounts.models import User


class Command(BaseCommand):
    help = ("Erase a user's personal data (PIPL/GDPR): profile, message text, rating comments, notes and "
            "uploaded images; conversations stay whole for the other party; an audit row is kept (accounts.Erasure).")

    def add_arguments(self, parser):
        parser.add_argument("user_id", type=int)
        parser.add_argument("--reason", default="", help="Kept in the audit row (e.g. the request's reference)")
        parser.add_argument("--by", default="", help="Who asked for it (default: the operating system user)")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help="Do not ask for confirmation")

    def handle(self, *args, user_id, reason, by, interactive, **options):
        user = User.objects.filter(pk=user_id).first()
        if user is None:
            raise CommandError(f"no user #{user_id}")
        if interactive:
            answer = input(f"Erase {user.username!r} (#{user_id})? This cannot be undone. Type 'yes': ")
            if answer != "yes":
                raise CommandError("not erased")
        try:
            erasure = user_erase(user_id=user_id, by=by or getpass.getuser(), reason=reason[:200])
        except ShopOwnerError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"erased user #{user_id}: {erasure.messages} messages, {erasure.conversations} "
                          f"conversation summaries, {erasure.files} files; audit row #{erasure.pk}")
