from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from chat.lifecycle import BATCH, messages_purge


class Command(BaseCommand):
    help = ("Delete messages older than DAYS days (and the uploaded images only they showed), in batches "
            "of short transactions that never lock the table; conversations, sessions and ratings stay.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS", dest="days")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted")
        parser.add_argument("--batch", type=int, default=BATCH, help=f"Rows per transaction (default {BATCH})")

    def handle(self, *args, days, dry_run, batch, verbosity, **options):
        if days < 1:
            raise CommandError("--older-than: at least 1 day")
        if not 1 <= batch <= 100_000:
            raise CommandError("--batch: between 1 and 100000")
        before = timezone.now() - timedelta(days=days)

        def progress(done):
            if verbosity > 1:
                self.stderr.write(f"  {done.messages} deleted ({done.batches} batches)")

        done = messages_purge(before=before, batch=batch, dry_run=dry_run, progress=progress)
        if dry_run:
            self.stdout.write(f"would delete {done.messages} messages stored before {before:%Y-%m-%d %H:%M} UTC")
        else:
            self.stdout.write(f"deleted {done.messages} messages stored before {before:%Y-%m-%d %H:%M} UTC "
                              f"in {done.batches} batches, and {done.files} image files")
