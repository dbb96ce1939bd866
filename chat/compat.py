"""The original's `user/*` HTTP endpoints: the socket handlers, in the HTTP compat shape."""

from chat import handlers
from imchat.compat_http import compat_endpoint


@compat_endpoint()
def user_index(request, caller, body):
    return handlers.call(caller, ("user", "friendlist"), body)


@compat_endpoint()
def chat_recently(request, caller, body):
    return handlers.call(caller, ("user", "recentchat"), body)


@compat_endpoint()
def chat_record(request, caller, body):
    return handlers.call(caller, ("user", "chatrecord"), body)
