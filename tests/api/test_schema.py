"""The OpenAPI 3 schema: generated without a warning, valid, served with a browsable page."""

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_the_schema_generates_without_warnings_and_validates(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    schema = yaml.safe_load(target.read_text())
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert {"/api/v1/conversations/", "/api/v1/conversations/{chat_id}/messages/", "/api/v1/messages/",
            "/api/v1/groups/", "/api/v1/shops/{shop_id}/agents/{uid}/", "/api/v1/notices/", "/api/v1/uploads/",
            "/api/v1/mall/users/", "/api/v1/mall/shops/", "/api/v1/auth/token/"} <= paths
    schemes = schema["components"]["securitySchemes"]
    assert schemes["jwtAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["mallApiKey"] == {"type": "apiKey", "in": "header", "name": "X-Imchat-Api-Key"}


def test_the_schema_and_its_docs_page_are_served_without_login():
    client = APIClient()

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    docs = client.get("/api/docs/")
    redoc = client.get("/api/redoc/")

    assert schema.status_code == 200 and schema.json()["info"]["title"] == "imchat REST API"
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    assert b"drf_spectacular_sidecar" in docs.content  # served from here, not from a CDN
    assert redoc.status_code == 200 and b"redoc" in redoc.content
