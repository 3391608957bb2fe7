"""Schemathesis against the live admin API, on the document the relay serves: no 5xx, and every
answer (status, content type, headers, body) as the document says.

Each operation is driven through its Hypothesis strategy (schemathesis's pytest plugin resolves
fixtures through a pytest internal that pytest 9 no longer has), in the budget of the fuzz tests'
profile: ``HYPOTHESIS_PROFILE=long`` (or ``FUZZ_EXAMPLES=N``) runs it longer, as ``tests.fuzz.profiles``
says; the CI profile is derandomized, so a CI run is the same run every time.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as sc
from schemathesis.core.parameters import ParameterLocation

from gptrelay.admin import api_routes
from tests.admin.conftest import ADMIN_KEY
from tests.conftest import RunningRelay
from tests.fuzz.profiles import PROFILE, budget

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Every check of schemathesis 4 that applies to single calls, but one: a body the schema allows
# may still be refused with 422 for what a schema cannot say (an expiry already past, a name already
# taken: 409 is expected, an origin that is not one after all), so positive_data_acceptance is no contract.
CHECKS = [sc.not_a_server_error, sc.status_code_conformance, sc.content_type_conformance,
          sc.response_headers_conformance, sc.response_schema_conformance, sc.negative_data_rejection,
          sc.missing_required_header, sc.unsupported_method, sc.ignored_auth, sc.use_after_free,
          sc.ensure_resource_availability]
OPERATIONS = 8  # the document's operations, every one of them checked


def operations(document: dict[str, Any]) -> list[schemathesis.APIOperation]:
    return [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]


def sent_as_generated(case: schemathesis.Case) -> bool:
    """Whether a query string can carry what was generated: an object, a null, an empty or nested
    array has no form there and vanishes on the way, and schemathesis, counting it as sent, would
    take the valid request that was actually sent for negative data accepted."""
    for value in (case.query or {}).values():
        items = value if isinstance(value, list) else [value]
        if not items or any(item is None or isinstance(item, dict | list) for item in items):
            return False
    return True


def headers_for(case: schemathesis.Case) -> dict[str, str]:
    """The admin key, unless the case is about the headers being wrong (then they are sent as generated)."""
    component = case.meta.components.get(ParameterLocation.HEADER) if case.meta is not None else None
    if component is not None and component.mode is GenerationMode.NEGATIVE:
        return {}
    return AUTH


def test_the_document_names_every_admin_route(admin: httpx.Client) -> None:
    document = admin.get("/admin/api/openapi.json").json()
    documented = {(method.upper(), path) for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    served = {(method, route.path) for route in api_routes() for method in route.methods}
    assert documented == served
    assert len(documented) == OPERATIONS


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_the_admin_api_keeps_its_document(admin: httpx.Client, admin_relay: RunningRelay,
                                          mode: GenerationMode) -> None:
    document = admin.get("/admin/api/openapi.json").json()
    # A key to find, change and revoke: generated names rarely name one.
    assert admin.post("/admin/api/keys", json={"name": "known"}).status_code == 201
    assert admin.post("/v1/models").status_code in (401, 404)  # (a request to have a usage row or none)
    checked = []
    for operation in operations(document):
        path_parameters = {"name": "known"} if "{name}" in operation.path else None

        @given(case=operation.as_strategy(mode, path_parameters=path_parameters).filter(sent_as_generated))
        @settings(budget(7), deadline=None, database=None, derandomize=PROFILE == "ci",
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=admin_relay.url, headers=headers_for(case), checks=CHECKS)

        check()
        checked.append(operation.label)
    assert len(checked) == OPERATIONS, checked
