from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from accounts.models import User
from accounts.services import user_by_name_or_id
from customer_service import services
from customer_service.models import Shop
from imchat.errors import AppError


class Command(BaseCommand):
    help = "Create a shop owned by a user; prints the shop id alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="username or id of the merchant")
        parser.add_argument("--id", type=int, dest="shop_id", help="Use this id (the mall's shop id)")
        parser.add_argument("--logo", default="")
        parser.add_argument("--strategy", default=Shop.Strategy.LEAST_BUSY, choices=Shop.Strategy.values)
        parser.add_argument("--offline-notice", default=None)

    def handle(self, *args, name, owner, shop_id, logo, strategy, offline_notice, **options):
        try:
            merchant = user_by_name_or_id(owner)
            shop = services.shop_create(name=name, owner=merchant, shop_id=shop_id, logo=logo, strategy=strategy,
                                        offline_notice=offline_notice)
        except User.DoesNotExist as error:
            raise CommandError(str(error)) from None
        except IntegrityError:
            raise CommandError(f"shop id {shop_id} already exists") from None
        except AppError as error:
            raise CommandError(error.msg) from None
        self.stdout.write(str(shop.pk))
