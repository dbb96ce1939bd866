"""Production is the default: no DEBUG unless asked, no start without secrets, no published secret.

Each test runs `manage.py` or the server in a subprocess with an environment of its own, as an
operator would start it.
"""

import json
import os
import secrets
import subprocess
import tempfile
import time

import httpx
import pytest

from tests.e2e.harness import MANAGE, PYTHON, ROOT, Site, base_env, craft_token, free_port

PUBLISHED_JWT_SECRET = "dev-only-jwt-secret-do-not-use-in-production"
OPERATOR_ENV = ("DJANGO_DEBUG", "DJANGO_SECRET_KEY", "IM_JWT_SECRET", "IM_HTTPS", "DATABASE_URL", "REDIS_URL",
                "IM_VAR_DIR", "ALLOWED_HOSTS", "IM_PUBLIC_URL")
RANDOM_SECRET = secrets.token_urlsafe(48)


def manage(*args: str, var_dir: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py as an operator runs it: nothing of this test run's environment but what is given."""
    clean = {name: value for name, value in os.environ.items() if name not in OPERATOR_ENV}
    clean.update(IM_VAR_DIR=var_dir, DJANGO_SETTINGS_MODULE="imchat.settings", **env)
    return subprocess.run([PYTHON, MANAGE, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


@pytest.fixture
def var_dir():
    with tempfile.TemporaryDirectory(prefix="imchat-settings-") as path:
        yield path


def test_without_secrets_and_without_debug_the_server_refuses_to_start_with_one_clear_line(var_dir):
    done = manage("check", var_dir=var_dir)

    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in done.stderr
    assert "DJANGO_DEBUG=1" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_server_process_refuses_to_start_without_secrets(var_dir):
    clean = {name: value for name, value in os.environ.items() if name not in OPERATOR_ENV}
    clean.update(IM_VAR_DIR=var_dir)
    done = subprocess.run([PYTHON, "-m", "imchat.serve", "-p", str(free_port()), "imchat.asgi:application"],
                          cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert "imchat: DJANGO_SECRET_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_server_runs_daphne_on_uvloop_and_autobahn_dresses_no_debug_line_up():
    """django.setup() imports daphne, which makes its loop then: the policy must come first (it
    once did not, and production ran on the stock loop unnoticed)."""
    code = ("from imchat import serve; serve.prepare(); "
            "import daphne.server, uvloop; from autobahn.websocket import protocol; "
            "print(isinstance(daphne.server.twisted_loop, uvloop.Loop), protocol.hltype is serve.as_given)")
    done = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DJANGO_SECRET_KEY": RANDOM_SECRET, "IM_JWT_SECRET": RANDOM_SECRET})

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_the_server_freezes_what_startup_made_the_application_included():
    """A full collection then walks only what serving made (a 60-80 ms stop of the loop before)."""
    code = ("import sys, gc; from imchat import serve; serve.prepare(); "
            "print(gc.get_freeze_count() > 100_000, 'chat.consumers' in sys.modules)")
    done = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DJANGO_SECRET_KEY": RANDOM_SECRET, "IM_JWT_SECRET": RANDOM_SECRET})

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("value", [PUBLISHED_JWT_SECRET, "short-secret"])
def test_a_published_or_short_secret_is_refused_even_with_debug(var_dir, value):
    done = manage("check", var_dir=var_dir, DJANGO_DEBUG="1", IM_JWT_SECRET=value)

    assert done.returncode != 0
    assert "IM_JWT_SECRET must be a random value" in done.stderr


def test_debug_is_off_unless_asked_for(var_dir):
    code = "from django.conf import settings; print(settings.DEBUG)"
    unset = manage("shell", "-c", code, var_dir=var_dir, DJANGO_SECRET_KEY=RANDOM_SECRET, IM_JWT_SECRET=RANDOM_SECRET)
    asked = manage("shell", "-c", code, var_dir=var_dir, DJANGO_DEBUG="1")

    assert unset.stdout.split()[-1] == "False", unset.stderr
    assert asked.stdout.split()[-1] == "True", asked.stderr


def test_a_development_server_makes_its_own_random_secrets_once_and_keeps_them_private(var_dir, tmp_path):
    code = "from django.conf import settings; print(settings.IM_JWT_SECRET)"
    first = manage("shell", "-c", code, var_dir=var_dir, DJANGO_DEBUG="1").stdout.split()[-1]
    again = manage("shell", "-c", code, var_dir=var_dir, DJANGO_DEBUG="1").stdout.split()[-1]
    elsewhere = manage("shell", "-c", code, var_dir=str(tmp_path), DJANGO_DEBUG="1").stdout.split()[-1]

    assert first == again and len(first) >= 32
    assert elsewhere != first
    assert first != PUBLISHED_JWT_SECRET
    stored = os.path.join(var_dir, "dev-secrets.json")
    assert json.load(open(stored))["IM_JWT_SECRET"] == first
    assert os.stat(stored).st_mode & 0o077 == 0


def test_check_deploy_is_clean_with_production_settings(var_dir):
    done = manage("check", "--deploy", "--fail-level", "WARNING", var_dir=var_dir, DJANGO_SECRET_KEY=RANDOM_SECRET,
                  IM_JWT_SECRET=RANDOM_SECRET[::-1], REDIS_URL="redis://127.0.0.1:6379/0",
                  ALLOWED_HOSTS="im.mall.example", IM_PUBLIC_URL="https://im.mall.example")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_a_token_forged_with_the_once_published_development_secret_is_refused_even_by_a_debug_server(var_dir):
    forged = craft_token(1, secret=PUBLISHED_JWT_SECRET)
    code = ("from accounts.tokens import InvalidToken, token_claims\n"
            "try:\n    token_claims(%r); print('accepted')\n"
            "except InvalidToken as error:\n    print('refused')" % forged)

    done = manage("shell", "-c", code, var_dir=var_dir, DJANGO_DEBUG="1")

    assert done.stdout.split()[-1] == "refused", done.stdout + done.stderr


@pytest.mark.e2e
def test_a_production_server_serves_no_debug_pages_and_redirects_plain_http_to_https():
    with tempfile.TemporaryDirectory(prefix="imchat-settings-") as var_dir:
        env = base_env(var_dir)
        env.pop("IM_HTTPS")  # the production default: behind a TLS-terminating proxy
        site = Site(env=env)
        site.migrate()
        port = free_port()
        # Not site.start(): it waits for a plain-HTTP 200, which this server answers with a redirect.
        process = subprocess.Popen([PYTHON, "-m", "imchat.serve", "-b", "127.0.0.1", "-p", str(port),
                                    "imchat.asgi:application"], cwd=ROOT, env=site.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    plain = httpx.get(base + "/no/such/page", timeout=2, trust_env=False)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.1)
            behind_proxy = httpx.get(base + "/no/such/page", headers={"X-Forwarded-Proto": "https"}, timeout=5,
                                     trust_env=False)
            forged = craft_token(1, secret=PUBLISHED_JWT_SECRET)
            api = httpx.get(base + "/api/v1/shops/1/agents/", timeout=5, trust_env=False,
                            headers={"X-Forwarded-Proto": "https", "Authorization": f"Bearer {forged}"})
        finally:
            process.terminate()
            process.wait(timeout=10)

    assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
    assert behind_proxy.status_code == 404
    assert "Traceback" not in behind_proxy.text and "URLconf" not in behind_proxy.text
    assert behind_proxy.headers["strict-transport-security"].startswith("max-age=")
    assert api.status_code == 401


def test_an_unknown_webhook_event_stops_the_start_with_one_clear_line(var_dir):
    done = manage("check", var_dir=var_dir, DJANGO_DEBUG="1", IM_WEBHOOK_EVENTS="default,session.opened")

    assert done.returncode != 0
    assert "IM_WEBHOOK_EVENTS: unknown event 'session.opened'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("env", "says"), [
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be plain or json"),
    ({"IM_METRICS_TOKEN": "short"}, "IM_METRICS_TOKEN must be a random value of 16+ characters"),
    ({"IM_METRICS_NETWORKS": "10.0.0.0/8,not-a-network"}, "IM_METRICS_NETWORKS"),
])
def test_a_bad_logs_or_metrics_setting_stops_the_server_with_one_line(var_dir, env, says):
    done = manage("check", var_dir=var_dir, DJANGO_DEBUG="1", **env)

    assert done.returncode != 0
    assert says in done.stderr
