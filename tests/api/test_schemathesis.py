"""Property-based conformance: schemathesis generates requests from ``/openapi.json`` (valid
ones and invalid ones) and checks every answer: no 5xx, only documented status codes, content
types and headers, bodies that match their schemas, invalid input rejected with a 4xx, and
authentication enforced (the same request without the token, or with a wrong one, refused).

The example count per operation is kept small so that both databases run in well under a
minute; the event stream is left out (it never ends, so there is no answer to check).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.support import Deployment, bearer

EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.mark.slow
def test_openapi_conformance(deployment: Deployment) -> None:
    # The fuzzer sends many wrong tokens on purpose (to check that auth is enforced): no
    # throttling here, its own tests are in tests/api/test_tokens.py.
    deployment.extra_env["STORESYNC_AUTH_FAILURE_LIMIT"] = "1000000"
    url = deployment.serve(worker=False)
    token = deployment.token("default")
    store = deployment.add_store("loja-lisboa.myshopify.com")
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path="/api/events")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14

    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, url=url, token=token, store=store)
            except Unsatisfiable:
                continue  # nothing in this operation can be made invalid (all is fixed)
            except Exception as exc:  # collect them all, then fail with the full list
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)


def _fuzz(operation: Any, mode: GenerationMode, *, url: str, token: str, store: int) -> None:
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    # Aim at the store that exists, so that its routes do more than answer 404; the token is
    # a fixed header, so that schemathesis knows every case carries it.
    path = {"store_id": store} if "{store_id}" in operation.path else None
    strategy = operation.as_strategy(
        generation_mode=mode, path_parameters=path, headers=bearer(token)
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=url, checks=checks)

    run()
