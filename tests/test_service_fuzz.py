"""Schemathesis fuzzes the service's own OpenAPI document on a live server: valid and invalid requests, no 5xx."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from service_fixtures import KEY, auth, server, svc_config, svc_export, svc_keys, svc_run  # noqa: F401

# Every check runs except "schema-valid data is accepted": JSON Schema cannot say that 'timestamps' has as many
# entries as 'items', and it counts 226.0 as an integer, so some schema-valid bodies are rightly answered 422.
EXAMPLES_PER_OPERATION = 80  # per generation mode; a few hundred cases over the four /v1 and ops operations
CASES: list[tuple[str, int]] = []  # (operation, status) of every case sent


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_request_gets_a_server_error(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/generate", "GET /v1/manifest", "GET /v1/artifacts/{target}"}
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call_and_validate(headers=auth(), excluded_checks=[positive_data_acceptance])
            CASES.append((operation.label, response.status_code))

        try:
            fuzz()
        except Unsatisfiable:  # an operation without parameters or body has no invalid form
            assert mode is GenerationMode.NEGATIVE and operation.label.startswith("GET /") and "{" not in operation.label


def test_fuzzing_sent_a_few_hundred_cases_and_the_server_still_serves(server):
    from collections import Counter

    statuses = sorted({status for _, status in CASES})
    print(f"schemathesis: {len(CASES)} cases, statuses {statuses}, per operation "
          f"{dict(Counter(label for label, _ in CASES))}")
    assert len(CASES) >= 300, f"only {len(CASES)} cases were generated"
    assert all(status < 500 for _, status in CASES)
    assert {200, 422} <= set(statuses)  # valid bodies generated slots, invalid ones were refused
    assert httpx.get(f"{server}/healthz").status_code == 200
    assert httpx.get(f"{server}/v1/manifest", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
