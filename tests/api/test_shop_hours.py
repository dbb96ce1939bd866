"""A shop's business hours over REST (owner only), with the attacks kept as tests."""

from datetime import date, timedelta

import pytest
import yaml
from django.core.management import call_command

from customer_service.models import Shop, ShopClosedDay, ShopHours
from tests import factories

pytestmark = pytest.mark.django_db

OFFICE = {
    "timezone": "Europe/Berlin",
    "schedule": [{"weekday": day, "opens": "09:00", "closes": "18:00"} for day in range(5)]
    + [{"weekday": 5, "opens": "22:00", "closes": "02:00"}],
    "closed_days": [{"date": "2027-12-25", "note": "Christmas"}, {"date": "2027-12-26"}],
    "greeting": "Hello! How can we help?",
    "out_of_hours_message": "Closed. Back {next_opening}.",
}


def url(shop) -> str:
    return f"/api/v1/shops/{shop.pk}/hours/"


def test_a_shop_without_hours_reads_always_open(merchant, shop, api):
    reply = api(merchant).get(url(shop))
    assert reply.status_code == 200
    result = reply.json()["result"]
    assert result["shop_id"] == shop.pk and result["timezone"] == "UTC"
    assert (result["schedule"], result["closed_days"], result["greeting"]) == ([], [], "")
    assert (result["always_open"], result["open_now"], result["next_opening"]) == (True, True, None)
    assert "{next_opening}" in result["out_of_hours_message"]


def test_the_owner_sets_and_reads_back_the_hours(merchant, shop, api):
    reply = api(merchant).put(url(shop), OFFICE, format="json")

    assert reply.status_code == 200, reply.content
    result = reply.json()["result"]
    assert result["timezone"] == "Europe/Berlin"
    assert result["schedule"] == OFFICE["schedule"]
    assert result["closed_days"] == [{"date": "2027-12-25", "note": "Christmas"}, {"date": "2027-12-26", "note": ""}]
    assert (result["greeting"], result["out_of_hours_message"]) == (OFFICE["greeting"], "Closed. Back {next_opening}.")
    assert result["always_open"] is False
    assert isinstance(result["open_now"], bool)
    assert result["open_now"] or result["next_opening"] > 0
    assert api(merchant).get(url(shop)).json()["result"] == result
    assert ShopHours.objects.filter(shop=shop).count() == 6

    # a second PUT replaces everything; greeting left out stays
    again = api(merchant).put(url(shop), {"timezone": "UTC", "schedule": []}, format="json").json()["result"]
    assert (again["schedule"], again["closed_days"], again["always_open"]) == ([], [], True)
    assert again["greeting"] == OFFICE["greeting"]


def test_another_merchants_shop_is_forbidden_and_no_shop_is_not_found(merchant, shop, api):
    intruder = factories.make_user(username="mallory")
    assert api(intruder).get(url(shop)).status_code == 403
    assert api(intruder).put(url(shop), OFFICE, format="json").status_code == 403
    assert api(merchant).get("/api/v1/shops/999999/hours/").status_code == 404
    assert not ShopHours.objects.exists()
    assert Shop.objects.get(pk=shop.pk).greeting == ""


def test_without_a_token_nothing_is_read(shop, client):
    assert client.get(url(shop)).status_code == 401


@pytest.mark.parametrize(("change", "field"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../../etc/passwd"}, "timezone"),
    ({"timezone": "x" * 65}, "timezone"),
    ({"schedule": [{"weekday": 7, "opens": "09:00", "closes": "10:00"}]}, "schedule[0].weekday"),
    ({"schedule": [{"weekday": 0, "opens": "25:00", "closes": "10:00"}]}, "schedule[0].opens"),
    ({"schedule": [{"weekday": 0, "opens": "09:00:30", "closes": "10:00"}]}, "schedule[0].opens"),
    ({"schedule": [{"weekday": 0, "opens": "09:00", "closes": "12:00"},
                   {"weekday": 0, "opens": "11:00", "closes": "13:00"}]}, "overlaps"),
    ({"schedule": [{"weekday": 0, "opens": "09:00", "closes": "10:00"}] * 43}, "schedule"),
    ({"schedule": "Mon-Fri 9-6"}, "schedule"),
    ({"schedule": None}, "schedule"),
    ({"closed_days": [{"date": "2027-02-30"}]}, "closed_days[0].date"),
    ({"closed_days": [{"date": (date(2027, 1, 1) + timedelta(days=n)).isoformat()} for n in range(401)]},
     "closed_days"),
    ({"closed_days": [{"date": "2027-01-01"}, {"date": "2027-01-01"}]}, "twice"),
    ({"closed_days": [{"date": "2027-01-01", "note": "n" * 101}]}, "closed_days[0].note"),
    ({"greeting": "g" * 501}, "greeting"),
    ({"out_of_hours_message": ""}, "out_of_hours_message"),
])
def test_bad_input_is_refused_by_name_and_changes_nothing(merchant, shop, api, change, field):
    reply = api(merchant).put(url(shop), {**OFFICE, **change}, format="json")
    assert reply.status_code == 400, reply.content
    body = reply.json()
    assert body["code"] == 0 and field in body["msg"]
    assert not ShopHours.objects.exists() and not ShopClosedDay.objects.exists()
    assert Shop.objects.get(pk=shop.pk).timezone == "UTC"


def test_a_body_that_is_not_an_object_is_refused(merchant, shop, api):
    assert api(merchant).put(url(shop), [OFFICE], format="json").status_code == 400


def test_the_schema_names_the_hours_resource(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    operations = schema["paths"]["/api/v1/shops/{shop_id}/hours/"]
    assert (operations["get"]["operationId"], operations["put"]["operationId"]) == ("shopHours", "shopHoursSet")
    reply = schema["components"]["schemas"]["HoursOutput"]["properties"]
    assert {"timezone", "schedule", "closed_days", "greeting", "out_of_hours_message", "open_now",
            "next_opening"} <= set(reply)
