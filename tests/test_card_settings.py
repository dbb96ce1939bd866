"""The card key (IM_MALL_API_KEY) as an operator meets it: production without it disables cards, the
docs' example key is refused, a development server makes its own; `manage.py signcard` signs."""

import json
import os
import subprocess
import time

import orjson

from chat.cards import card_from_link_value, card_read
from tests.e2e.harness import MANAGE, PYTHON, ROOT
from tests.test_settings import OPERATOR_ENV, RANDOM_SECRET, manage, var_dir  # noqa: F401 (fixture)

PRODUCT = {"kind": "product", "id": "42", "title": "Blue shirt", "price": "129.00",
           "image": "https://mall.example/i/42.jpg", "link": "https://mall.example/p/42"}
PRINT_KEY = "from django.conf import settings; print(repr(settings.IM_MALL_API_KEY))"
PRODUCTION = {"DJANGO_SECRET_KEY": RANDOM_SECRET, "IM_JWT_SECRET": RANDOM_SECRET[::-1]}


def signcard(*args: str, var_dir: str, key: str, card: dict) -> subprocess.CompletedProcess:  # noqa: F811
    env = {name: value for name, value in os.environ.items() if name not in OPERATOR_ENV}
    env.update(IM_VAR_DIR=var_dir, DJANGO_SETTINGS_MODULE="imchat.settings", IM_MALL_API_KEY=key, **PRODUCTION)
    return subprocess.run([PYTHON, MANAGE, "signcard", *args], cwd=ROOT, env=env, input=json.dumps(card),
                          capture_output=True, text=True, timeout=60)


def test_production_without_a_mall_key_starts_with_cards_disabled(var_dir):  # noqa: F811
    done = manage("shell", "-c", PRINT_KEY, var_dir=var_dir, **PRODUCTION)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "''"
    assert not os.path.exists(os.path.join(var_dir, "dev-secrets.json"))


def test_the_docs_example_key_is_refused_even_by_a_development_server(var_dir):  # noqa: F811
    done = manage("check", var_dir=var_dir, DJANGO_DEBUG="1", IM_MALL_API_KEY="example-mall-key-do-not-use")

    assert done.returncode != 0
    assert "IM_MALL_API_KEY is the example of the docs" in done.stderr


def test_a_development_server_makes_a_private_mall_key_and_adds_it_to_an_older_secrets_file(var_dir):  # noqa: F811
    path = os.path.join(var_dir, "dev-secrets.json")
    with open(path, "w") as older:  # from before cards: two secrets only
        json.dump({"DJANGO_SECRET_KEY": RANDOM_SECRET, "IM_JWT_SECRET": RANDOM_SECRET[::-1]}, older)

    first = manage("shell", "-c", PRINT_KEY, var_dir=var_dir, DJANGO_DEBUG="1").stdout.split()[-1]
    again = manage("shell", "-c", PRINT_KEY, var_dir=var_dir, DJANGO_DEBUG="1").stdout.split()[-1]

    assert first == again and len(first) > 40
    stored = json.load(open(path))
    assert stored["IM_JWT_SECRET"] == RANDOM_SECRET[::-1]  # the others are kept
    assert repr(stored["IM_MALL_API_KEY"]) == first
    assert os.stat(path).st_mode & 0o077 == 0


def test_signcard_signs_what_imchat_then_accepts_and_refuses_a_bad_card(var_dir, settings):  # noqa: F811
    key = "mall-card-key-" + "c0m" * 10
    signed = signcard("--expires-in", "600", var_dir=var_dir, key=key, card=PRODUCT)
    link = signcard("--link", var_dir=var_dir, key=key, card=PRODUCT)
    bad = signcard(var_dir=var_dir, key=key, card={**PRODUCT, "price": 129})

    settings.IM_MALL_API_KEY = key
    card = orjson.loads(signed.stdout.strip().splitlines()[-1])
    assert time.time() < card["expires"] <= time.time() + 600
    assert card_read(card).shown == PRODUCT
    assert card_read(card_from_link_value(link.stdout.strip().splitlines()[-1])).shown == PRODUCT
    assert bad.returncode != 0 and "card.price: must be a decimal string" in bad.stderr
