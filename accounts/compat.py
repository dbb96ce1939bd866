"""The original's `login` and `login/register` endpoints, throttled per client address (and a login
per username, with backoff: accounts/throttling.py)."""

from accounts import services
from accounts.tokens import token_mint
from chat.protocol import read_str
from imchat.compat_http import compat_endpoint
from imchat.throttling import LoginThrottle, RegisterThrottle


@compat_endpoint(login_required=False, throttles=(LoginThrottle,))
def login(request, caller, body):
    token = services.user_login(username=read_str(body, "username", required=True),
                                password=read_str(body, "password", required=True))
    return "登录成功", {"token": token}


# A taken name is refused as the original did; the per-address rate keeps that from being a bulk
# oracle of which names exist.
@compat_endpoint(login_required=False, throttles=(RegisterThrottle,))
def register(request, caller, body):
    user = services.user_register(username=read_str(body, "username", required=True, max_length=150),
                                  password=read_str(body, "password", required=True, max_length=128))
    return "注册成功", {"token": token_mint(user_id=user.pk)}
