"""Loaded before Django (`-p tests.environment` in pytest.ini): the test run's own environment.

Tests run with production settings (no DJANGO_DEBUG), so they need secrets: random ones per run,
never a value written anywhere. Plain HTTP (IM_HTTPS=0), as the test client and the e2e servers
speak it; the HTTPS settings have tests of their own that start the server without this.
"""

import os
import secrets

for name in ("DJANGO_SECRET_KEY", "IM_JWT_SECRET"):
    os.environ.setdefault(name, secrets.token_urlsafe(48))
os.environ.setdefault("IM_HTTPS", "0")
