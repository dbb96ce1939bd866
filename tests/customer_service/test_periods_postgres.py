"""The reports' SQL path (percentile_cont, PostgreSQL) gives the figures of the SQLite path (Python
percentiles from an ordered stream) on the same hand-made sessions (report_data.py)."""

import json

import pytest

from tests.customer_service.postgres_periods_probe import reports
from tests.services import probe, scratch_postgres


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_computes_the_same_report_figures_as_the_sqlite_path():
    with scratch_postgres() as url:
        on_postgresql = probe("tests.customer_service.postgres_periods_probe", url)

    on_sqlite = json.loads(json.dumps(reports()))  # this process: SQLite

    assert on_postgresql == on_sqlite
    assert on_postgresql["day"][0]["first_response_p90"] == 183.0  # not trivially equal: figures are there
