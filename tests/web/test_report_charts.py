"""The dashboard's reports in Debian's Chromium against a real daphne with the demo data and thirty
days of history (report_history.py): the charts, the agents' table, the CSV links, 7 and 30 days."""

import pytest

from tests.web.people import WAIT_MS, Person
from tests.web.report_history import HISTORY

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]


@pytest.fixture(scope="module")
def merchant(browser, demo_site):
    demo_site.manage("shell", "-c", HISTORY)
    person = Person(browser, demo_site.servers[0].http_url, "merchant")
    person.page.goto(person.base_url + "/dashboard/")
    yield person
    assert person.errors == []
    person.close()


def test_the_last_seven_days_draw_as_bars_and_lines_with_the_agents_table(merchant):
    page = merchant.page
    page.locator("#report-sessions-chart rect.bar").first.wait_for(timeout=WAIT_MS)

    assert page.locator("#report-sessions-chart rect.bar.started").count() == 7
    assert page.locator("#report-sessions-chart rect.bar.closed").count() == 7
    heights = [float(height) for height in page.locator("#report-sessions-chart rect.started").evaluate_all(
        "bars => bars.map(bar => bar.getAttribute('height'))")]
    assert sum(1 for height in heights if height > 0) >= 6  # yesterday back: every day had conversations
    assert page.locator("#report-response-chart path.line-p50").count() == 1
    assert page.locator("#report-response-chart circle.dot-p90").count() >= 6
    assert page.locator("#report-days tr").count() == 7
    agents = page.locator("#report-agents tr")
    names = sorted(agents.locator("th").all_inner_texts())
    assert names[-2:] == ["Amy (agent)", "Ben (agent)"]
    amy = page.locator("#report-agents tr", has_text="Amy (agent)")
    assert amy.locator("td").nth(0).inner_text().isdigit()
    assert "★" in amy.locator("td").last.inner_text()
    assert page.get_by_role("button", name="7 days").get_attribute("aria-pressed") == "true"


def test_the_csv_links_download_the_shown_period_of_one_shop(merchant):
    page = merchant.page
    assert page.locator("#report-downloads").count() == 0  # the merchant's two shops: no one shop's CSV
    page.goto(merchant.base_url + "/dashboard/?shop=1")
    page.locator("#report-sessions-chart rect.bar").first.wait_for(timeout=WAIT_MS)

    href = page.locator("#report-csv-daily").get_attribute("href")
    assert href.startswith("/api/v1/shops/1/reports/daily/export/?since=")
    with page.expect_download() as download_info:
        page.locator("#report-csv-agents").click()
    download = download_info.value
    assert download.suggested_filename.startswith("imchat-shop1-agent-")
    lines = open(download.path(), encoding="utf-8").read().splitlines()
    assert lines[0].startswith("agent_uid,agent_name,sessions_started")
    assert any(line.split(",")[1] == "Amy (agent)" for line in lines[1:])


def test_thirty_days_redraw_the_charts(merchant):
    page = merchant.page
    page.get_by_role("button", name="30 days").click()

    page.locator('[data-report-days="30"][aria-pressed="true"]').wait_for(timeout=WAIT_MS)
    page.wait_for_function("document.querySelectorAll('#report-sessions-chart rect.started').length === 30",
                           timeout=WAIT_MS)
    assert page.locator("#report-days tr").count() == 30
    assert "30" not in page.locator("#report-csv-daily").get_attribute("href").split("since=")[0]
