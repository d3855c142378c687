"""The saga page of one big saga: a for_each of 100 and of 1,000 elements, two steps each.

Server time (Django's test client in this process: middleware, queries,
templates) and response size of the page, its live-refresh fragment and the
API's saga detail. The sagas are made by the engine itself (published
workflow, `start_saga`, the sync runner), a few elements failed by hand so
that the page has failed element steps to put first. README "Performance":

    DATABASE_URL=postgres://…/some_db .venv/bin/python manage.py shell -c \\
        "from dashboard.bench import big_saga_page; big_saga_page.main()"
"""

import json
import statistics
import time

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from sagas.authoring import publish_workflow
from sagas.engine import start_saga
from sagas.models import Saga, SagaStep
from sagas.q2.runner import settle

WORKFLOW = {
    "name": "bench_big_saga",
    "steps": [
        {"name": "reserve", "type": "action", "action": "demo.noop"},
        {
            "name": "lines",
            "type": "parallel",
            "for_each": "input.lines",
            "steps": [
                {"name": "hold_line", "type": "action", "action": "demo.noop"},
                {"name": "await_line", "type": "wait", "event": "line.ok"},
            ],
        },
    ],
}
FAILED = 3  # elements whose wait failed: retry / skip on their rows


def build(n):
    """A pending saga over `n` lines: each element's hold done, its wait waiting (3 failed).

    Made once per database and size, so that two trees (before / after a
    change) are measured on the same rows.
    """
    made = Saga.objects.filter(workflow="bench_big_saga", correlation_id=f"big-{n}").first()
    if made is not None:
        return made
    publish_workflow(WORKFLOW)
    saga, _ = start_saga(
        workflow="bench_big_saga",
        input={"lines": [{"sku": f"SKU-{i}"} for i in range(n)]},
        correlation_id=f"big-{n}",
    )
    settle()
    failed = [str(i) for i in range(n - 1, 0, -(n // FAILED))][:FAILED]
    SagaStep.objects.filter(saga=saga, name="await_line", branch__in=failed).update(
        status="failed", error="line refused"
    )
    return saga


def timed(client, url, repeat, **headers):
    for _ in range(3):  # warm: templates, plans
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            t = time.perf_counter()
            response = client.get(url, headers=headers)
            times.append(time.perf_counter() - t)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] * 1000, 1),
        "kB": round(len(response.content) / 1000, 1),
        "queries": len(queries),
    }


def measure(sizes=(100, 1000), repeat=20):
    operator, _ = get_user_model().objects.get_or_create(username="bench_operator")
    operator.groups.add(Group.objects.get_or_create(name="operators")[0])
    client = Client()
    client.force_login(operator)
    results = {}
    for n in sizes:
        saga = build(n)
        results[n] = {
            "steps": SagaStep.objects.filter(saga=saga).count(),
            "page": timed(client, f"/sagas/{saga.pk}/", repeat),
            "fragment": timed(client, f"/sagas/{saga.pk}/", repeat, HX_Request="true"),
            "api": timed(client, f"/api/v1/sagas/{saga.pk}/", repeat),
        }
    return results


def main():
    results = measure()
    for n, figures in results.items():
        for what in ("page", "fragment", "api"):
            f = figures[what]
            print(
                f"{n:>5} elements ({figures['steps']} rows) {what:<8} "
                f"p50 {f['p50_ms']:>7} ms  p95 {f['p95_ms']:>7} ms  "
                f"{f['kB']:>8} kB  {f['queries']} queries"
            )
    print(json.dumps(results))
