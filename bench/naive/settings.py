"""imchat's settings, with the naive consumer's ASGI app and Channels' default core Redis layer."""

from imchat.settings import *  # noqa: F403
from imchat.settings import INSTALLED_APPS, IM_REDIS_PREFIX, REDIS_URL

ASGI_APPLICATION = "bench.naive.asgi.application"
INSTALLED_APPS = [*INSTALLED_APPS, "bench.naive"]

if REDIS_URL:
    # Channels' documented default: the core layer, default capacity, expiry and pool.
    # Only the prefix is ours, so one benchmark run does not see another's groups.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": IM_REDIS_PREFIX},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
