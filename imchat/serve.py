"""`python -m imchat.serve [daphne options] imchat.asgi:application`: daphne on uvloop's event loop.

Daphne runs Twisted on an asyncio loop it creates when it is imported, so the loop's policy has to
be set before that (and before django.setup(), which imports daphne as an installed app): here.
uvloop's loop costs ~15 % less CPU per message than asyncio's (see docs/PERFORMANCE.md); every
daphne option works as with the `daphne` command, which also still serves the same application (on
the stock loop, and without draining on SIGTERM: see imchat/shutdown.py). One more saving:
autobahn's debug lines are not dressed up while nobody reads them (`plain_autobahn_debug_lines`).
With LOG_FORMAT=json the access log is written as log records (imchat/logs.py `AccessLog`), so
every line of output is JSON.
"""

import asyncio
import gc
import os
import sys

import uvloop
from django.core.exceptions import ImproperlyConfigured


def main() -> None:
    sys.argv[0] = "daphne"
    sys.exit(prepare().entrypoint())


def prepare() -> type:
    """Django set up, daphne imported on uvloop's loop; the command-line class that serves."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
    # First of all: django.setup() imports daphne (an installed app), and daphne makes its loop then.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        import django
        from django.conf import settings

        settings.SECRET_KEY  # a missing production secret: one clear line, not a traceback
        django.setup()  # and a bad setting the apps check (IM_WEBHOOK_EVENTS)
    except ImproperlyConfigured as error:
        sys.exit(f"imchat: {error}")
    from daphne import cli

    from imchat.shutdown import DrainingServer

    plain_autobahn_debug_lines()
    if settings.LOG_FORMAT == "json":  # every line of output JSON: the access log too
        from imchat.logs import AccessLog

        cli.AccessLogGenerator = AccessLog

    class Serve(cli.CommandLineInterface):
        server_class = DrainingServer  # SIGTERM drains (imchat/shutdown.py)

    freeze_what_startup_made()
    return Serve


def freeze_what_startup_made() -> None:
    """Python's full collection walks every object the process holds; Django, daphne and the app's
    modules are most of them and live as long as the process. On this machine that walk stopped the
    event loop for 60-80 ms every few seconds under load (the p99 of `imbench --rate 2000`); frozen,
    a full collection walks only what serving made (12-19 ms)."""
    import imchat.asgi  # noqa: F401  the application's modules, imported now to be frozen too

    gc.collect()
    gc.freeze()


def plain_autobahn_debug_lines() -> None:
    """autobahn builds the arguments of its debug lines whether they are logged or not. It
    pretty-prints its whole configuration (29 settings) for one on every new connection: ~360 µs,
    ~8 % of the CPU of opening a socket (py-spy); `repr` says the same on one line in ~20 µs. And it
    colours (click.style, where click is installed) the arguments of one on every frame read and
    every frame written: ~7 % of the server's CPU per private message (py-spy); the lines keep the
    plain values."""
    from autobahn.twisted import websocket as twisted_websocket
    from autobahn.websocket import protocol

    protocol.pformat = repr
    for module in (protocol, twisted_websocket):
        module.hltype = module.hlval = as_given


def as_given(value, *_, **__):
    return value


if __name__ == "__main__":
    main()
