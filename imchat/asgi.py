"""ASGI entry point: HTTP to Django, WebSocket (at / and /ws/) to the chat consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.middleware import SocketAuthStack  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

from imchat.logs import WithIds  # noqa: E402

# WithIds: every line logged while serving a request or a socket carries its id (imchat/logs.py).
application = WithIds(ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SocketAuthStack(URLRouter(websocket_urlpatterns)),
    }
))
