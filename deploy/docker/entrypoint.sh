#!/bin/sh
# The imchat image's entry point: the static files collected, the database migrated when asked
# (IM_MIGRATE=1: one container of a release does it, deploy/compose.yaml's `migrate`), then one
# server process on IM_PORT (default 9601), or the command given instead (e.g. `manage.py shell`).
set -eu
if [ "${IM_MIGRATE:-0}" = "1" ]; then
    exec python manage.py migrate --noinput
fi
python manage.py collectstatic --noinput --verbosity 0
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec python -m imchat.serve -b "${IM_BIND:-0.0.0.0}" -p "${IM_PORT:-9601}" --websocket_timeout -1 --proxy-headers \
    imchat.asgi:application
