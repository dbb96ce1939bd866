"""ASGI entry point of the naive baseline: every WebSocket path goes to NaiveChatConsumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.naive.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from bench.naive.consumers import NaiveChatConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([re_path(r"^(ws/?)?$", NaiveChatConsumer.as_asgi())]),
    }
)
