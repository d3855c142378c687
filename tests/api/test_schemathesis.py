"""The live API against its own OpenAPI schema: schemathesis finds no 5xx and no non-conformance."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from sagas.engine import start_saga
from tests.conftest import wait_for

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
]
# Not checked: positive_data_acceptance. A schema-valid workflow document or
# saga input can still break a rule the schema cannot say (an unknown action,
# a JSON Schema of the workflow's own), and the right answer to it is a 400.


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_live_api_conforms_to_its_schema(
    live_server, qcluster, publish, django_user_model, tmp_path
):
    from approvals.models import ApprovalRequest
    from sagas.demo.models import Stock
    from sagas.models import Saga, SagaStep
    from sagas.q2.sweeper import sweeper_lag

    for name in ["operators", "managers", "directors", "legal", "finance"]:
        Group.objects.get_or_create(name=name)
    admin = django_user_model.objects.create_user("root", "root@example.com", "pw", is_staff=True)
    admin.groups.add(*Group.objects.filter(name__in=["operators", "managers"]))
    token = Token.objects.create(user=admin).key
    Stock.objects.create(sku="WIDGET", available=1000)
    # The demo's expenses name this user (away in seed_demo).
    django_user_model.objects.create_user("finance", "finance@example.com", "pw")
    demo = Path(__file__).resolve().parents[2] / "sagas" / "demo" / "workflows"
    # vendor_onboarding before purchase_request, which runs it as a child saga
    for path in sorted(demo.glob("*.yaml"), key=lambda p: p.name != "vendor_onboarding.yaml"):
        publish(path.read_text())
    starter = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw")
    for i in range(3):
        start_saga(
            workflow="shipment_tracking", input={"order_id": f"s{i}"}, correlation_id=f"o-{i}"
        )
        start_saga(
            workflow="order_fulfillment",
            input={"order_id": f"b{i}", "amount": 5000},
            correlation_id=f"b-{i}",
            user=starter,
        )
    # A real qcluster runs them (and keeps /health/ at 200, as in production).
    qcluster(workers=1)
    wait_for(lambda: (sweeper_lag() or 99) < 5, message="the qcluster's sweeper")
    wait_for(lambda: ApprovalRequest.objects.count() == 3, message="the approval requests")

    # Real ids and names, mixed into what schemathesis generates, so that the
    # operations reach real sagas, steps, approvals and waiting steps, not only 404s.
    known = {
        "sagas": [str(pk) for pk in Saga.objects.values_list("pk", flat=True)],
        "steps": sorted(set(SagaStep.objects.values_list("name", flat=True))),
        "approvals": list(ApprovalRequest.objects.values_list("pk", flat=True)),
        "correlations": list(Saga.objects.values_list("correlation_id", flat=True)),
        "workflows": ["order_fulfillment", "shipment_tracking", "expense_approval"],
        "events": ["shipment.picked_up"],
    }
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "".join(
            f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n\n"
            for name, values in known.items()
        )
        + "[parameters]\n"
        + "".join(
            f'"{key}" = {{ dictionary = "{name}", probability = 0.6 }}\n'
            for key, name in [
                ("path.saga_id", "sagas"),
                ("path.step_name", "steps"),
                ("path.approval_id", "approvals"),
                ("path.name", "workflows"),
                ("body.workflow", "workflows"),
                ("body.correlation_id", "correlations"),
                ("body.type", "events"),
            ]
        )
    )

    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(config),
            "run",
            f"{live_server.url}/api/schema/",
            "--header",
            f"Authorization: Token {token}",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--workers",
            "1",
            "--seed",
            "20261126",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = result.stdout[-8000:] + result.stderr[-2000:]
    assert result.returncode == 0, summary
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested, summary
    # Every operation of the schema was exercised, none skipped for lack of data.
    assert selected[1] == selected[2] == tested[1], summary
