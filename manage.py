#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        import django
        from django.conf import settings

        settings.SECRET_KEY  # a missing production secret: one clear line, not a traceback
        django.setup()  # and a bad setting the apps check (IM_WEBHOOK_EVENTS)
    except ImproperlyConfigured as error:
        sys.exit(f"imchat: {error}")
    execute_from_command_line(sys.argv)
