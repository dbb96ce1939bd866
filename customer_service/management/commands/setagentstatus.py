from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import user_by_name_or_id
from customer_service import services
from customer_service.management.commands._live import warn_if_not_live
from customer_service.models import ServiceAgent
from imchat.errors import AppError
from imchat.links import default_base_url


class Command(BaseCommand):
    help = "Set an agent's status in a shop (takes effect for routing at once)."

    def add_arguments(self, parser):
        parser.add_argument("shop_id", type=int)
        parser.add_argument("username", help="username or id")
        parser.add_argument("status", choices=ServiceAgent.Status.values)

    def handle(self, *args, shop_id, username, status, **options):
        try:
            user = user_by_name_or_id(username)
            services.agent_set_status(user=user, status=status, shop_id=shop_id, base_url=default_base_url())
        except User.DoesNotExist as error:
            raise CommandError(str(error)) from None
        except AppError as error:
            raise CommandError(error.msg) from None
        warn_if_not_live(self)
        self.stdout.write(f"{username} is {status} in shop {shop_id}")
