"""Schemathesis fuzzes the service's own OpenAPI document on a live server: valid and invalid requests, no 5xx."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from service_fixtures import KEY, auth

# Every check runs except "schema-valid data is accepted": JSON Schema cannot say that 'timestamps' has as many
# entries as 'items', and it counts 226.0 as an integer, so some schema-valid bodies are rightly answered 422.
EXAMPLES_PER_OPERATION = 120  # per operation and generation mode: a few hundred cases in all
MODES = {"valid": GenerationMode.POSITIVE, "invalid": GenerationMode.NEGATIVE}


@pytest.fixture(scope="module")
def api_schema(svc_server):
    schema = schemathesis.openapi.from_url(f"{svc_server}/openapi.json")
    schema.config.generation.update(with_security_parameters=False)  # the key is ours to send, below
    rejection = schema.config.checks.negative_data_rejection  # an invalid body over the size limit is refused
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]  # with 413, before it is even parsed
    return schema


def _fuzz(api_schema, mode: GenerationMode) -> list[tuple[str, int]]:
    """(operation, status) of every case sent in one generation mode; schemathesis' checks raise on a defect."""
    cases: list[tuple[str, int]] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/generate", "GET /v1/manifest", "GET /v1/artifacts/{target}",
                                              "GET /v1/slots/base"}
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call_and_validate(headers=auth(), excluded_checks=[positive_data_acceptance])
            cases.append((f"{mode.value} {operation.label}", response.status_code))

        try:
            fuzz()
        except Unsatisfiable:  # no invalid form: no parameters, or a path parameter any string satisfies
            assert mode is GenerationMode.NEGATIVE and operation.label.startswith("GET /")
    return cases


@pytest.fixture(scope="module")
def fuzz_cases(api_schema) -> dict[str, list[tuple[str, int]]]:
    """Every mode fuzzed once per module; each test below reads the cases it needs (and passes alone)."""
    return {name: _fuzz(api_schema, mode) for name, mode in MODES.items()}


@pytest.mark.parametrize("mode", MODES)
def test_no_request_gets_a_server_error(fuzz_cases, mode):
    errors = [(label, status) for label, status in fuzz_cases[mode] if status >= 500]
    assert not errors, errors


def test_fuzzing_sent_a_few_hundred_cases_and_the_server_still_serves(svc_server, fuzz_cases):
    cases = [case for mode in MODES for case in fuzz_cases[mode]]
    statuses = sorted({status for _, status in cases})
    print(f"schemathesis: {len(cases)} cases, statuses {statuses}, per operation "
          f"{dict(Counter(label for label, _ in cases))}")
    assert len(cases) >= 300, f"only {len(cases)} cases were generated"
    assert {200, 422} <= set(statuses)  # valid bodies generated slots, invalid ones were refused
    generate = Counter(label for label, _ in cases if label.endswith("POST /v1/generate"))
    assert generate["positive POST /v1/generate"] >= 50 and generate["negative POST /v1/generate"] >= 50
    assert httpx.get(f"{svc_server}/healthz").status_code == 200
    assert httpx.get(f"{svc_server}/v1/manifest", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
