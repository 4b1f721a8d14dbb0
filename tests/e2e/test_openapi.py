"""Property-based requests generated from the collector's OpenAPI document (schemathesis):
never a 5xx, and every response matches what the document promises."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from waylineproc import Running

pytestmark = pytest.mark.e2e

AUTH = "Basic " + base64.b64encode(b"wk_web_e2e_1:").decode()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_collector_honours_its_openapi_document(wayline_up: Running) -> None:
    schema = schemathesis.openapi.from_url(f"{wayline_up.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 14, "every collector endpoint is documented"
    for operation in operations:

        @settings(
            max_examples=int(os.environ.get("WAYLINE_FUZZ_EXAMPLES", "25")),
            deadline=None,
            database=None,
            derandomize="WAYLINE_FUZZ_EXAMPLES" not in os.environ,  # CI: the same cases each run
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": AUTH}, checks=CHECKS)

        call()
