"""Shared by the commands that change live state."""

from chat.realtime import layer_is_shared

IN_MEMORY_NOTE = (
    "note: REDIS_URL is not set, so this command cannot reach the server's sockets; "
    "the change is stored and connected clients see it on their next fetch."
)


def warn_if_not_live(command) -> None:
    if not layer_is_shared():
        command.stderr.write(IN_MEMORY_NOTE)
