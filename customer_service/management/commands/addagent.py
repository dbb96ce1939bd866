from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import user_by_name_or_id
from customer_service import services
from customer_service.management.commands._live import warn_if_not_live
from customer_service.models import ServiceAgent, Shop
from imchat.errors import AppError
from imchat.links import default_base_url


class Command(BaseCommand):
    help = "Make a user an agent of a shop; prints the agent record's id alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("shop_id", type=int)
        parser.add_argument("username", help="username or id")
        parser.add_argument("--status", default=ServiceAgent.Status.OFFLINE, choices=ServiceAgent.Status.values)
        parser.add_argument("--max-sessions", type=int, default=10)

    def handle(self, *args, shop_id, username, status, max_sessions, **options):
        try:
            shop = Shop.objects.get(pk=shop_id)
            user = user_by_name_or_id(username)
            agent = services.agent_add(shop=shop, user=user, status=status, max_sessions=max_sessions,
                                       base_url=default_base_url())
        except Shop.DoesNotExist:
            raise CommandError(f"no shop {shop_id}") from None
        except User.DoesNotExist as error:
            raise CommandError(str(error)) from None
        except AppError as error:
            raise CommandError(error.msg) from None
        warn_if_not_live(self)
        self.stdout.write(str(agent.pk))
