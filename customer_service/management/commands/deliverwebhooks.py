from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from customer_service import webhooks


class Command(BaseCommand):
    help = ("Deliver the mall's due webhooks once (or every --loop seconds); server processes also do this "
            "on their own while they serve sockets.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=float, default=None, metavar="SECONDS",
                            help="keep delivering, a pass every SECONDS")
        parser.add_argument("--limit", type=int, default=1000, help="at most this many events per pass")
        parser.add_argument("--prune-days", type=int, default=None, metavar="DAYS",
                            help="only delete delivered events (and their attempts) older than DAYS; "
                                 "given-up ones are kept for the admin")

    def handle(self, *args, loop, limit, prune_days, **options):
        if prune_days is not None:
            if prune_days < 1:
                raise CommandError("--prune-days: 1 or more")
            self.stdout.write(f"deleted {webhooks.deliveries_prune(days=prune_days)} delivered events")
            return
        if not settings.IM_WEBHOOK_URL:
            self.stdout.write("IM_WEBHOOK_URL is not set: nothing to deliver")
            return
        if loop:
            webhooks.deliver_forever(interval=loop, limit=limit)
            return
        self.stdout.write(str(webhooks.webhooks_deliver(limit=limit)))
