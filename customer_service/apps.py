from django.apps import AppConfig


class CustomerServiceConfig(AppConfig):
    name = "customer_service"
    verbose_name = "customer service"
    default_auto_field = "django.db.models.BigAutoField"
