"""The desk search on the real PostgreSQL: pg_trgm indexes used, Chinese found, under a UTF-8 and a C locale.

Each test makes a scratch database (as tests/e2e/harness.py does), migrates it, and runs
postgres_search_probe.py in a process of its own pointed at it (this process's Django uses SQLite).
"""

import os

import psycopg
import pytest

from bench.search import ADMIN_URL, create_database, drop_database, migrate
from tests.services import probe, require_postgres

pytestmark = pytest.mark.postgres


def search_probe(database_url: str, messages: int) -> dict:
    return probe("tests.customer_service.postgres_search_probe", database_url, str(messages))


@pytest.fixture
def scratch_database():
    """`make(**create_options)` -> the URL of a new migrated database, dropped afterwards."""
    require_postgres()
    made = []

    def make(locale: str | None = None) -> str:
        if locale is None:
            name, url = create_database()
        else:
            name = f"imchat_search_c_{os.getpid()}"
            with psycopg.connect(ADMIN_URL.replace("postgres://", "postgresql://", 1), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                              f"LC_COLLATE '{locale}' LC_CTYPE '{locale}'")
            url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        made.append(name)
        migrate(url)
        return url

    yield make
    for name in made:
        drop_database(name)


def test_on_postgresql_the_search_finds_chinese_and_english_through_the_trigram_index(scratch_database):
    result = search_probe(scratch_database(), 30000)

    assert result["cjk_trigrams"] is True  # a UTF-8 locale: pg_trgm indexes CJK words
    assert result["two_chinese"]["snippets"] == ["你好，我想申请退款，谢谢"]
    assert result["two_chinese"]["marked"] == ["退款"] and result["two_chinese"]["recent_only"] is True
    assert result["four_chinese"]["snippets"] == ["你好，我想申请退款，谢谢"]
    assert result["four_chinese"]["recent_only"] is False
    assert result["english"]["snippets"] == ["Where is my parcel?"] and result["english"]["marked"] == ["parcel"]
    assert result["percent"]["snippets"] == ["discount 50% off"]
    assert result["order"]["snippets"] == ["[Order 2024-001] Green tea x2"]
    assert result["customer"]["customers"] == ["王小花"]
    assert result["other_shop"]["code"] == -403
    # a 3+ character term, English or Chinese, is looked up in the trigram index
    assert "Bitmap Index Scan on message_service_text_trgm" in result["plan_english"], result["plan_english"]
    assert "Bitmap Index Scan on message_service_text_trgm" in result["plan_chinese"], result["plan_chinese"]
    # a 2 character term has no trigram: not the trigram index, but the window of the newest messages
    assert "message_service_text_trgm" not in result["plan_short"]
    assert result["timeout"] == "q: matches too much to search in time; add words"


def test_under_the_c_locale_chinese_is_still_found_within_the_window(scratch_database):
    # pg_trgm makes no trigram of a non-ASCII character under LC_CTYPE C: every Chinese term takes
    # the bounded path instead of an index lookup that would find nothing to narrow by
    result = search_probe(scratch_database(locale="C"), 3000)

    assert result["cjk_trigrams"] is False
    assert result["four_chinese"]["snippets"] == ["你好，我想申请退款，谢谢"]
    assert result["four_chinese"]["recent_only"] is True
    assert result["english"]["snippets"] == ["Where is my parcel?"]
    assert "message_service_text_trgm" not in result["plan_chinese"]  # nothing there to look up
