from django.apps import AppConfig


class CustomerServiceConfig(AppConfig):
    name = "customer_service"
    verbose_name = "customer service"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from customer_service import webhooks

        webhooks.subscribed_events(settings.IM_WEBHOOK_EVENTS)  # an unknown event name stops the start
