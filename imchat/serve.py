"""`python -m imchat.serve [daphne options] imchat.asgi:application`: daphne on uvloop's event loop.

Daphne runs Twisted on an asyncio loop it creates when it is imported, so the loop's policy has to
be set before that: here. uvloop's loop costs ~15 % less CPU per message than asyncio's (see
docs/PERFORMANCE.md); every daphne option works as with the `daphne` command, which also still
serves the same application (on the stock loop, and without draining on SIGTERM: see
imchat/shutdown.py). One more saving: autobahn's per-connection debug line is not pretty-printed
(see `unformatted_autobahn_debug_line`). With LOG_FORMAT=json the access log is written as log
records (imchat/logs.py `AccessLog`), so every line of output is JSON.
"""

import asyncio
import os
import sys

import uvloop
from django.core.exceptions import ImproperlyConfigured


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
    try:
        import django
        from django.conf import settings

        settings.SECRET_KEY  # a missing production secret: one clear line, not a traceback
        django.setup()  # and a bad setting the apps check (IM_WEBHOOK_EVENTS)
    except ImproperlyConfigured as error:
        sys.exit(f"imchat: {error}")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne import cli  # after the policy: daphne makes its loop on import

    from imchat.shutdown import DrainingServer

    unformatted_autobahn_debug_line()
    if settings.LOG_FORMAT == "json":  # every line of output JSON: the access log too
        from imchat.logs import AccessLog

        cli.AccessLogGenerator = AccessLog

    class Serve(cli.CommandLineInterface):
        server_class = DrainingServer  # SIGTERM drains (imchat/shutdown.py)

    sys.argv[0] = "daphne"
    sys.exit(Serve.entrypoint())


def unformatted_autobahn_debug_line() -> None:
    """autobahn pretty-prints its whole configuration (29 settings) for a debug line on every new
    connection, logged or not: ~360 µs, ~8 % of the CPU of opening a socket (py-spy). `repr` says
    the same on one line in ~20 µs."""
    from autobahn.websocket import protocol

    protocol.pformat = repr


if __name__ == "__main__":
    main()
