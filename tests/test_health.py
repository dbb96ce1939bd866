"""The probes answer before the Host check and without a session; draining makes /readyz 503."""

import pytest

from imchat import health


@pytest.fixture
def undrained():
    yield
    health._draining.clear()


@pytest.mark.django_db
def test_the_probes_answer_a_balancer_that_probes_by_address(client):
    live = client.get("/healthz", HTTP_HOST="10.0.0.5:9504")
    ready = client.get("/readyz", HTTP_HOST="10.0.0.5:9504")

    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert (ready.json()["database"], ready.json()["redis"], ready.json()["sockets"]) == ("ok", "none", "accepting")
    assert "Set-Cookie" not in live.headers and "Set-Cookie" not in ready.headers
    assert live["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_other_paths_still_check_the_host(client):
    assert client.get("/", HTTP_HOST="10.0.0.5:9504").status_code == 400
    assert client.get("/healthz/", HTTP_HOST="10.0.0.5:9504").status_code == 400  # only the exact paths


@pytest.mark.django_db
def test_a_draining_process_is_alive_but_not_ready(client, undrained):
    health.mark_draining()

    ready = client.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable" and ready.json()["sockets"] == "draining"
    assert client.get("/healthz").status_code == 200

