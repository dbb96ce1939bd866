"""Plain builders for tests: users through the real service, tokens, callers, and decoded pushes."""

import functools
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts.models import User
from accounts.services import user_create
from accounts.tokens import token_mint
from chat.protocol import Caller
from chat.realtime import Push, user_group

BASE_URL = "http://testserver"
PASSWORD = "correct-horse-battery-9"

_names = itertools.count(1)


def make_user(*, username: str | None = None, nickname: str | None = None, avatar: str = "",
              password: str | None = None, user_id: int | None = None, is_active: bool = True) -> User:
    """A user created the way the app creates users (accounts.services.user_create)."""
    username = username or f"user{next(_names)}"
    user = user_create(
        username=username,
        user_id=user_id,
        nickname=nickname if nickname is not None else username.capitalize(),
        avatar=avatar,
        password=password,
    )
    if not is_active:
        User.objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
    return user


def token_for(user: User, **options: Any) -> str:
    return token_mint(user_id=user.pk, **options)


def pyjwt_token(claims: dict[str, Any] | None = None, *, user_id: Any = None, secret: str | None = None,
                algorithm: str = "HS256", ttl: int = 3600, headers: dict | None = None) -> str:
    """A token minted independently of accounts.tokens, the way the mall backend mints one."""
    now = int(time.time())
    if claims is None:
        claims = {"iss": settings.IM_JWT_ISSUER, "iat": now, "exp": now + ttl, "data": {"id": user_id}}
    return jwt.encode(claims, secret if secret is not None else settings.IM_JWT_SECRET,
                      algorithm=algorithm, headers=headers)


def caller_of(user: User, *, channel_name: str | None = None, base_url: str = BASE_URL) -> Caller:
    return Caller(user=user, base_url=base_url, channel_name=channel_name)


@dataclass(frozen=True)
class Sent:
    """One decoded push: which group, which frame, which socket it skips."""

    group: str
    code: int
    msg: Any
    result: Any
    exclude: str | None


def decode_pushes(pushes: list[Push]) -> list[Sent]:
    """What each group's sockets are sent (membership changes send nothing); the sender's own user
    group gets the push's own text (307)."""
    sent = []
    for push in pushes:
        if push.text is None:
            continue  # a membership change: no frame
        own = push.own_text is not None and push.group == user_group(push.sender_uid)
        frame = json.loads(push.own_text if own else push.text)
        sent.append(Sent(push.group, frame["code"], frame["msg"], frame["result"], push.exclude_channel))
    return sent


def send_content(to_uid: Any, msg: str = "hello", **extra: Any) -> dict[str, Any]:
    """chat.sendMsg content exactly as the compat client sends it for a private chat."""
    return {"to_uid": to_uid, "chat_type": 1, "msg_type": 1, "msg": msg, "chat_id": "", "shop_id": 0,
            "role_type": 0, **extra}


# --- Sockets: the real ASGI application through channels' WebsocketCommunicator ------------------


def synchronously(test):
    """Run an async test body from a plain sync test (the project does not use pytest-asyncio).

    asgiref runs the body on its own event loop and the consumer's database_sync_to_async work back
    on the test's thread, so the test and the consumer share one database connection.
    """

    @functools.wraps(test)
    def run(*args, **kwargs):
        return async_to_sync(test)(*args, **kwargs)

    return run


def socket(path: str = "/", *, headers: list[tuple[bytes, bytes]] | None = None, application=None):
    """A communicator for one WebSocket of imchat.asgi.application (create it inside the event loop)."""
    if application is None:
        from imchat.asgi import application
    return WebsocketCommunicator(application, path, headers=headers or [])


async def open_socket(user: User | None = None, *, path: str = "/",
                      headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    """An accepted, logged-in socket (by ?token= when a user is given)."""
    if user is not None:
        path = f"{path}?token={token_for(user)}"
    communicator = socket(path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def refusal(communicator: WebsocketCommunicator) -> tuple[dict, int]:
    """What a socket refused at login gets: the one frame, then the close code."""
    frame = await communicator.receive_json_from()
    closed = await communicator.receive_output()
    assert closed["type"] == "websocket.close", closed
    return frame, closed["code"]


async def request(communicator: WebsocketCommunicator, cls: str, action: str, content: Any = None,
                  **extra: Any) -> dict:
    """Send one request frame and return the next frame (its reply, when nothing else is queued)."""
    await communicator.send_json_to({"class": cls, "action": action, "content": content, **extra})
    return await communicator.receive_json_from()
