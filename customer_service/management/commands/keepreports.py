from datetime import UTC

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from customer_service import periods
from customer_service.models import Shop


class Command(BaseCommand):
    help = ("Keep the report figures of the settled days of the last --days days and sum their whole months (each "
            "shop's zone, and UTC for every shop) ahead of the first report that would otherwise compute them; e.g. "
            "daily from cron.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=periods.MAX_DAYS,
                            help=f"how far back, 1 to {periods.MAX_DAYS} (default {periods.MAX_DAYS})")

    def handle(self, *args, days, **options):
        if not 1 <= days <= periods.MAX_DAYS:
            raise CommandError(f"--days: 1 to {periods.MAX_DAYS}")
        zones: dict[str, list[int]] = {}
        for shop_id, name in Shop.objects.values_list("pk", "timezone"):
            zones.setdefault(str(periods.shop_zone(name)), []).append(shop_id)
        scopes = [(periods.shop_zone(name), shop_ids) for name, shop_ids in zones.items()] + [(UTC, None)]
        for zone, shop_ids in scopes:
            kept, _ = periods.settled_split(periods.period_parse(None, None, zone=zone, default_days=days))
            if kept:
                periods.fill(shop_ids, kept)
                self.stdout.write(f"{zone}: kept up to {kept.until} for {len(shop_ids or []) or 'every'} shop(s)")
        self.stdout.write(f"{sum(len(ids) for ids in zones.values())} shops done")
