"""The desk search on the real PostgreSQL: pg_trgm indexes used, Chinese found, under a UTF-8 and a C locale.

Each test makes a scratch database (as tests/e2e/harness.py does), migrates it, and runs
postgres_search_probe.py in a process of its own pointed at it (this process's Django uses SQLite).
"""

import pytest

from tests.services import probe, scratch_postgres

pytestmark = pytest.mark.postgres


def search_probe(messages: int, locale: str | None = None) -> dict:
    with scratch_postgres(locale) as url:
        return probe("tests.customer_service.postgres_search_probe", url, str(messages))


def test_on_postgresql_the_search_finds_chinese_and_english_through_the_trigram_index():
    result = search_probe(30000)

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


def test_under_the_c_locale_chinese_is_still_found_within_the_window():
    # pg_trgm makes no trigram of a non-ASCII character under LC_CTYPE C: every Chinese term takes
    # the bounded path instead of an index lookup that would find nothing to narrow by
    result = search_probe(3000, locale="C")

    assert result["cjk_trigrams"] is False
    assert result["four_chinese"]["snippets"] == ["你好，我想申请退款，谢谢"]
    assert result["four_chinese"]["recent_only"] is True
    assert result["english"]["snippets"] == ["Where is my parcel?"]
    assert "message_service_text_trgm" not in result["plan_chinese"]  # nothing there to look up
