"""The dashboard's 7/30-day reports (/dashboard/reports/): the owner's shops only, 7 or 30 days, the
shop's zone for one shop and UTC for several, CSV links to the REST exports for one shop."""

import pytest
from django.urls import reverse

from tests.web.test_views import client_for, page_config


def test_the_owner_reads_seven_or_thirty_days_of_their_shop(world):
    client = client_for(world.owner_a)

    week = client.get(reverse("dashboard-reports")).json()
    month = client.get(reverse("dashboard-reports"), {"days": 30}).json()

    assert (week["days"], len(week["daily"])) == (7, 7) and (month["days"], len(month["daily"])) == (30, 30)
    assert week["timezone"] == world.shop_a.timezone and week["daily"][-1]["day"] == week["until"]
    assert sum(row["sessions_started"] for row in week["daily"]) == 1  # the world's queued session
    assert [row["agent_uid"] for row in week["agents"]] == [0]


def test_another_shop_other_periods_and_outsiders_are_refused(world):
    owner = client_for(world.owner_a)

    assert owner.get(reverse("dashboard-reports"), {"shop": world.shop_b.pk}).status_code == 403
    assert owner.get(reverse("dashboard-reports"), {"days": 366}).status_code == 400
    assert client_for(world.agent_a).get(reverse("dashboard-reports")).status_code == 403
    assert client_for().get(reverse("dashboard-reports")).status_code == 401


def test_several_shops_count_utc_days_and_offer_no_csv_link(world):
    world.shop_a.timezone = "Asia/Shanghai"
    world.shop_a.save(update_fields=["timezone"])
    superuser = client_for(world.superuser)

    both = superuser.get(reverse("dashboard-reports")).json()
    one = superuser.get(reverse("dashboard-reports"), {"shop": world.shop_a.pk}).json()
    page = superuser.get(reverse("dashboard")).content.decode()
    page_one = superuser.get(reverse("dashboard"), {"shop": world.shop_a.pk}).content.decode()

    assert both["timezone"] == "UTC" and one["timezone"] == "Asia/Shanghai"
    assert 'id="reports"' in page and 'id="report-downloads"' not in page
    assert f'data-base="/api/v1/shops/{world.shop_a.pk}/reports/"' in page_one


@pytest.mark.parametrize("days", ["7", "30"])
def test_the_dashboard_page_tells_its_script_where_the_reports_are(world, days):
    page = client_for(world.owner_a).get(reverse("dashboard"))

    config = page_config(page)
    assert config["reports_url"] == reverse("dashboard-reports")
    assert config["strings"]["report_p90"] == "90th percentile"
    assert f'data-report-days="{days}"' in page.content.decode()


def test_the_reports_panel_speaks_chinese(world):
    page = client_for(world.owner_a, HTTP_ACCEPT_LANGUAGE="zh-CN").get(reverse("dashboard"))

    html = page.content.decode()
    assert "报表" in html and "每天的会话" in html
    assert page_config(page)["strings"]["report_p90"] == "第 90 百分位"
