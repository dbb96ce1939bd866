"""Reports over REST (customer_service/report_apis.py): per day, per agent, per shop for the mall; as
JSON and as streamed CSV; who may read which rows, and bad ranges refused."""

import csv
import io

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from customer_service import periods
from customer_service.models import ServiceAgent
from tests import factories
from tests.api.conftest import client_for
from tests.customer_service.report_data import build

pytestmark = pytest.mark.django_db
KEY = "reports-mall-key-" + "k" * 24
RANGE = "?since=2026-03-27&until=2026-03-31"


@pytest.fixture
def data(settings) -> dict[str, int]:
    settings.IM_MALL_API_KEY = KEY
    ids = build()
    ServiceAgent.objects.create(shop_id=ids["shop"], user_id=ids["amy"])
    ServiceAgent.objects.create(shop_id=ids["shop"], user_id=ids["ben"])
    return ids


def as_user(uid: int) -> APIClient:
    return client_for(User.objects.get(pk=uid))


def mall(key: str = KEY) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_IMCHAT_API_KEY=key)
    return client


def daily(client: APIClient, shop_id: int, query: str = RANGE):
    return client.get(f"/api/v1/shops/{shop_id}/reports/daily/{query}")


def test_the_owner_reads_the_shops_days_in_its_zone(data):
    reply = daily(as_user(data["merchant"]), data["shop"])

    assert reply.status_code == 200
    result = reply.json()["result"]
    assert (result["shop_id"], result["timezone"], result["since"], result["until"]) == \
        (data["shop"], "Europe/Berlin", "2026-03-27", "2026-03-31")
    assert [row["day"] for row in result["rows"]] == ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30",
                                                      "2026-03-31"]
    assert result["rows"][0]["first_response_p90"] == 183.0 and result["rows"][2]["sessions_started"] == 2


def test_an_agent_reads_the_shops_days_but_only_their_own_agent_row(data):
    days = daily(as_user(data["amy"]), data["shop"])
    agents = as_user(data["amy"]).get(f"/api/v1/shops/{data['shop']}/reports/agents/{RANGE}")
    owner_view = as_user(data["merchant"]).get(f"/api/v1/shops/{data['shop']}/reports/agents/{RANGE}")

    assert days.status_code == 200 and sum(row["sessions_started"] for row in days.json()["result"]["rows"]) == 6
    assert [row["agent_uid"] for row in agents.json()["result"]["rows"]] == [data["amy"]]
    assert [row["agent_uid"] for row in owner_view.json()["result"]["rows"]] == [0, data["amy"], data["ben"]]


def test_per_agent_and_day(data):
    reply = as_user(data["merchant"]).get(f"/api/v1/shops/{data['shop']}/reports/agents/{RANGE}&per_day=true")

    rows = reply.json()["result"]["rows"]
    assert {(row["agent_name"], row["day"]) for row in rows} >= {("Rep-Amy", "2026-03-27"), ("Rep-Ben", "2026-03-31")}


def test_the_mall_reads_any_shop_and_the_report_of_every_shop(data):
    one = daily(mall(), data["shop"])
    every = mall().get(f"/api/v1/reports/shops/{RANGE}")

    assert one.status_code == 200
    result = every.json()["result"]
    assert result["timezone"] == "UTC" and "shop_id" not in result
    assert [(row["shop_name"], row["sessions_started"]) for row in result["rows"]] == [("Report Tea", 6),
                                                                                     ("Other Tea", 1)]


def test_a_superuser_reads_everything_and_an_owner_not_the_report_of_every_shop(data):
    root = factories.make_user(username="root")
    root.is_superuser = True
    root.save(update_fields=["is_superuser"])

    assert daily(client_for(root), data["other"]).status_code == 200
    assert client_for(root).get(f"/api/v1/reports/shops/{RANGE}").status_code == 200
    refused = as_user(data["merchant"]).get(f"/api/v1/reports/shops/{RANGE}")
    assert refused.status_code == 403 and refused.json()["code"] == -403


@pytest.mark.parametrize("path", ["reports/daily/", "reports/daily/export/", "reports/agents/",
                                  "reports/agents/export/"])
def test_another_shops_owner_or_agent_is_refused(data, path):
    outsider = factories.make_user(username="outsider")
    ServiceAgent.objects.create(shop_id=data["other"], user=outsider)
    other_owner = User.objects.get(username="rep-other")

    for client in (client_for(outsider), client_for(other_owner)):
        reply = client.get(f"/api/v1/shops/{data['shop']}/{path}{RANGE}")
        assert reply.status_code == 403 and reply.json()["code"] == -403
    missing = as_user(data["merchant"]).get(f"/api/v1/shops/999999/{path}{RANGE}")
    assert missing.status_code == 404


def test_no_login_a_wrong_mall_key_or_a_deactivated_owner_is_refused(data):
    owner = User.objects.get(pk=data["merchant"])
    client = client_for(owner)
    User.objects.filter(pk=owner.pk).update(is_active=False)

    assert daily(APIClient(), data["shop"]).status_code == 401
    assert daily(mall("wrong-key"), data["shop"]).status_code == 401
    assert APIClient().get(f"/api/v1/reports/shops/export/{RANGE}").status_code == 401
    assert daily(client, data["shop"]).status_code == 401


def test_without_a_configured_mall_key_users_still_read_their_reports(data, settings):
    settings.IM_MALL_API_KEY = ""

    assert daily(as_user(data["merchant"]), data["shop"]).status_code == 200
    assert daily(mall(), data["shop"]).status_code == 403  # the key is refused while none is configured


@pytest.mark.parametrize("query, message", [
    ("?since=2026-03-31&until=2026-03-01", "since: after until"),
    ("?since=2025-01-01&until=2026-12-31", "until: at most 366 days from since"),
    ("?since=2000-01-01&until=2999-12-31", "until: at most 366 days from since"),
    ("?since=yesterday", "since: a date as YYYY-MM-DD"),
    ("?until=2026-02-30", "until: no such date"),
    ("?since=" + "9" * 500, "since: Ensure this field has no more than 10 characters."),
    ("?per_day=maybe", "per_day: Must be a valid boolean."),
])
def test_bad_or_huge_ranges_are_a_400_naming_the_field(data, query, message):
    for path in ("reports/agents/", "reports/agents/export/"):
        reply = as_user(data["merchant"]).get(f"/api/v1/shops/{data['shop']}/{path}{query}")

        assert reply.status_code == 400, path
        assert reply.json() == {"code": 0, "msg": message, "result": None}


def test_without_a_range_the_last_seven_days_of_the_shop(data):
    result = daily(as_user(data["merchant"]), data["shop"], "").json()["result"]

    assert len(result["rows"]) == periods.DEFAULT_DAYS and result["rows"][-1]["day"] == result["until"]


# --- CSV ----------------------------------------------------------------------------------------


def test_the_daily_csv_streams_a_header_then_a_line_per_day(data):
    reply = as_user(data["merchant"]).get(f"/api/v1/shops/{data['shop']}/reports/daily/export/{RANGE}",
                                          HTTP_ACCEPT="text/csv")

    assert reply.status_code == 200 and reply.streaming
    assert reply["Content-Type"] == "text/csv; charset=utf-8"
    assert reply["Content-Disposition"] == \
        f'attachment; filename="imchat-shop{data["shop"]}-day-2026-03-27-2026-03-31.csv"'
    chunks = list(reply.streaming_content)
    assert len(chunks) == 6  # written line by line, not as one body
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert [row["day"] for row in rows] == ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]
    assert rows[0]["first_response_p90"] == "183.0" and rows[3]["first_response_p50"] == ""
    assert list(rows[0]) == list(periods.columns("day"))


def test_the_agents_and_shops_csv_and_a_name_that_would_be_a_formula_is_made_text(data):
    User.objects.filter(pk=data["amy"]).update(nickname="=HYPERLINK(\"http://evil\")")

    agents = as_user(data["merchant"]).get(f"/api/v1/shops/{data['shop']}/reports/agents/export/{RANGE}")
    shops = mall().get(f"/api/v1/reports/shops/export/{RANGE}")

    agent_rows = list(csv.DictReader(io.StringIO(b"".join(agents.streaming_content).decode())))
    assert [row["agent_name"] for row in agent_rows] == ["", "'=HYPERLINK(\"http://evil\")", "Rep-Ben"]
    assert agent_rows[0]["messages_customer"] == ""  # not an agent's figure
    shop_rows = list(csv.DictReader(io.StringIO(b"".join(shops.streaming_content).decode())))
    assert [row["shop_name"] for row in shop_rows] == ["Report Tea", "Other Tea"]
    assert shops["Content-Disposition"] == 'attachment; filename="imchat-shops-shop-2026-03-27-2026-03-31.csv"'


def test_an_export_error_answers_in_json_even_when_csv_is_asked_for(data):
    reply = as_user(data["merchant"]).get(f"/api/v1/shops/{data['shop']}/reports/daily/export/?since=x",
                                          HTTP_ACCEPT="text/csv")

    assert reply.status_code == 400
    assert reply.json()["msg"] == "since: a date as YYYY-MM-DD"


def test_reports_are_rate_limited_per_user(data, rates):
    rates(report="2/minute")
    owner = as_user(data["merchant"])

    statuses = [daily(owner, data["shop"]).status_code for _ in range(3)]
    export = owner.get(f"/api/v1/shops/{data['shop']}/reports/daily/export/{RANGE}")

    assert statuses == [200, 200, 429]
    assert export.status_code == 429 and int(export["Retry-After"]) > 0
    assert daily(as_user(data["amy"]), data["shop"]).status_code == 200  # another user counts on their own
