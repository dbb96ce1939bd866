from django.core.management.base import BaseCommand, CommandError

from chat.models import Notice
from customer_service.management.commands._live import warn_if_not_live
from customer_service.notices import notice_send_to
from imchat.errors import AppError


class Command(BaseCommand):
    help = "Send a system notice; prints the notice's id alone on the last line."

    def add_arguments(self, parser):
        audience = parser.add_mutually_exclusive_group(required=True)
        audience.add_argument("--all", action="store_true", help="everyone (stored once)")
        audience.add_argument("--user", type=int, metavar="ID")
        audience.add_argument("--shop", type=int, metavar="ID", help="the shop's agents and owner")
        audience.add_argument("--group", type=int, metavar="ID", help="the group's members")
        parser.add_argument("text")

    def handle(self, *args, text, **options):
        if options["all"]:
            audience, target = Notice.Audience.ALL, None
        else:
            audience = next(name for name in ("user", "shop", "group") if options[name] is not None)
            target = options[audience]
        try:
            notice = notice_send_to(audience=audience, target_id=target, text=text)
        except AppError as error:
            raise CommandError(error.msg) from None
        warn_if_not_live(self)
        self.stdout.write(str(notice.pk))
