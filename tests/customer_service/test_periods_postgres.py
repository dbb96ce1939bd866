"""The reports' SQL path (percentile_cont, PostgreSQL) gives the figures of the SQLite path (Python
percentiles from an ordered stream) on the same hand-made sessions (report_data.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.search import create_database, drop_database, migrate
from tests.customer_service.postgres_periods_probe import reports
from tests.services import require_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_computes_the_same_report_figures_as_the_sqlite_path():
    require_postgres()
    name, url = create_database()
    try:
        migrate(url)
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "1", "LOG_LEVEL": "WARNING"}
        done = subprocess.run([sys.executable, "-m", "tests.customer_service.postgres_periods_probe"], check=False,
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    finally:
        drop_database(name)
    assert done.returncode == 0, done.stderr[-3000:]
    on_postgresql = json.loads(done.stdout.strip().splitlines()[-1])

    on_sqlite = json.loads(json.dumps(reports()))  # this process: SQLite

    assert on_postgresql == on_sqlite
    assert on_postgresql["day"][0]["first_response_p90"] == 183.0  # not trivially equal: figures are there
