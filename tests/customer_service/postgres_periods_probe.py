"""Run by test_periods_postgres.py in a process of its own whose DATABASE_URL is a scratch PostgreSQL
database (already migrated): builds report_data.py's sessions, prints every report as one JSON object.

    DATABASE_URL=postgres://.../scratch python -m tests.customer_service.postgres_periods_probe
"""

import json
import os


def reports() -> dict:
    """Every grouping of report_data.py's shop, ids left out (they differ between databases): its days
    computed live, and kept (ReportFigures: the histograms' buckets computed in SQL or in Python; a
    whole month summed in ReportMonthFigures)."""
    from datetime import UTC

    from django.test import override_settings

    from customer_service import periods
    from tests.customer_service.report_data import BERLIN, build

    ids = build()
    cases = {"day": ([ids["shop"]], BERLIN, None), "day_utc": ([ids["shop"]], UTC, None),
             "agent": ([ids["shop"]], BERLIN, None), "agent_day": ([ids["shop"]], BERLIN, ids["amy"]),
             "shop": (None, UTC, None), "agent_month": ([ids["shop"]], BERLIN, None), "shop_month": (None, UTC, None)}
    out = {}
    for mode, settled in (("", 100 * 365 * 86400), ("kept_", 0)):
        for name, (shop_ids, zone, agent_uid) in cases.items():
            # "_month": all of March, kept as a whole month (ReportMonthFigures)
            since = "2026-03-01" if name.endswith("_month") else "2026-03-27"
            period = periods.period_parse(since, "2026-03-31", zone=zone)
            with override_settings(IM_REPORT_SETTLED_SECONDS=settled):
                rows = periods.period_report(shop_ids=shop_ids, period=period,
                                             grouping=name.removesuffix("_utc").removesuffix("_month"),
                                             agent_uid=agent_uid)
            out[mode + name] = [{key: value for key, value in row.items() if key not in ("agent_uid", "shop_id")}
                                for row in rows]
    return out


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
    import django

    django.setup()
    from django.db import connection

    assert connection.vendor == "postgresql", connection.vendor
    print(json.dumps(reports()))


if __name__ == "__main__":
    main()
