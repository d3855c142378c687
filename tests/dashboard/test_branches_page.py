"""The saga page with branches: a for_each expands to its elements, the table and the
timeline read branch by branch."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from sagas.engine import start_saga
from sagas.models import SagaStep

from .conftest import HTMX
from .test_diagram import NESTED

PER_LINE = {
    "name": "per_line",
    "steps": [
        {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {
            "name": "lines",
            "type": "parallel",
            "for_each": "input.lines",
            "steps": [
                {"name": "hold_line", "type": "action", "action": "test.ok"},
                {"name": "await_line", "type": "wait", "event": "line.ok"},
            ],
        },
    ],
}


def _per_line(publish, settle, n):
    publish(PER_LINE)
    lines = [{"sku": f"SKU-{i}"} for i in range(n)]
    saga, _ = start_saga(workflow="per_line", input={"lines": lines})
    settle()
    return saga


def _element_rows(html):
    return re.findall(r'<tr data-element="(\d+)" data-status="([a-z]+)"', html)


def test_a_for_each_expands_to_its_elements_those_that_failed_first_and_capped(
    client, alice, publish, settle
):
    saga = _per_line(publish, settle, 60)
    SagaStep.objects.filter(saga=saga, name="await_line", branch="57").update(status="failed")
    client.force_login(alice)
    html = client.get(f"/sagas/{saga.pk}/").content.decode()
    assert '<details class="elements" id="elements-' in html and 'data-elements="lines"' in html
    assert "60 elements" in html and "59 … waiting" in html and "1 ✕ failed" in html
    rows = _element_rows(html)
    assert len(rows) == 50 and rows[0] == ("57", "failed") and rows[1] == ("0", "waiting")
    assert "SKU-57" in html and "10 more elements not shown" in html
    more = client.get(f"/sagas/{saga.pk}/?elements=100", headers=HTMX).content.decode()
    assert len(_element_rows(more)) == 60 and "more elements not shown" not in more
    # The expansion the person asked for stays open, and the page polls at that address.
    assert 'data-elements="lines" open' in more
    assert f'hx-get="/sagas/{saga.pk}/?elements=100"' in more


def test_the_page_takes_the_same_queries_for_20_and_200_elements(client, alice, publish, settle):
    small = _per_line(publish, settle, 20)
    large = _per_line(publish, settle, 200)
    client.force_login(alice)
    client.get(f"/sagas/{small.pk}/")
    counts = []
    for saga in (small, large):
        for mode in ("", "?timeline=branch"):
            with CaptureQueriesContext(connection) as queries:
                html = client.get(f"/sagas/{saga.pk}/{mode}").content.decode()
            counts.append(len(queries))
    assert len(_element_rows(html)) == 50
    assert counts[0] == counts[2] and counts[1] == counts[3]


def test_the_step_table_puts_each_branch_under_its_heading(client, alice, publish, settle):
    publish(NESTED)
    saga, _ = start_saga(workflow="nested", input={})
    settle()
    client.force_login(alice)
    html = client.get(f"/sagas/{saga.pk}/").content.decode()
    heads = re.findall(r'data-branch-head="([^"]+)"', html)
    assert heads == [
        "sign_off › legal",
        "sign_off › legal › reviews › inside",
        "sign_off › legal › reviews › outside",
        "sign_off › finance",
    ]
    # Under its heading, a step is indented by how deep it sits.
    assert re.search(r'<tr id="step-counsel" class="depth-2"', html)
    assert re.search(r'<tr id="step-ship" class="depth-0"', html)


def test_the_timeline_reads_by_time_or_by_branch(client, alice, publish, settle):
    publish(NESTED)
    saga, _ = start_saga(workflow="nested", input={})
    settle()
    client.force_login(alice)
    by_time = client.get(f"/sagas/{saga.pk}/").content.decode()
    assert 'data-timeline-mode="time" aria-current="true"' in by_time
    assert "timeline-group" not in by_time
    by_branch = client.get(f"/sagas/{saga.pk}/?timeline=branch", headers=HTMX).content.decode()
    assert 'data-timeline-mode="branch" aria-current="true"' in by_branch
    groups = re.findall(r'class="timeline-group depth-\d" data-group="([^"]*)"', by_branch)
    assert groups == [
        "",
        "sign_off › legal",
        "sign_off › legal › reviews › inside",
        "sign_off › legal › reviews › outside",
        "sign_off › finance",
    ]
    section = by_branch.split('data-group="sign_off › legal › reviews › outside"')[1]
    section = section.split("</section>")[0]
    assert 'data-step="counsel"' in section and 'data-step="in_house"' not in section
    own = by_branch.split('data-group=""')[1].split("</section>")[0]
    assert 'data-step="ship"' in own and 'data-step="counsel"' not in own
    # The live refresh keeps the reader's choice.
    assert f'hx-get="/sagas/{saga.pk}/?timeline=branch"' in by_branch


def test_the_timeline_by_branch_groups_a_for_each_by_element_capped(client, alice, publish, settle):
    saga = _per_line(publish, settle, 60)
    client.force_login(alice)
    html = client.get(f"/sagas/{saga.pk}/?timeline=branch").content.decode()
    groups = re.findall(r'class="timeline-group depth-\d" data-group="([^"]*)"', html)
    assert groups[:3] == ["", "lines › element 0", "lines › element 1"] and len(groups) == 51
    assert 'data-hidden-groups="10"' in html


def _table_rows(html):
    """(step, element) of each row of the step table, in order."""
    table = html.split('class="table table-cards steps-table"')[1].split("</table>")[0]
    return re.findall(
        r'<tr id="step-[^"]*" class="depth-\d" data-step="(\w+)"[^>]*?(?: data-branch="(\d*)")?>',
        table,
    )


def _elements_head(html):
    """(elements, hidden, its words, its links) of the table's heading row of `lines`."""
    found = re.search(
        r'data-elements-head="lines" data-total="(\d+)" data-hidden="(\d+)"><th[^>]*>(.*?)</th>',
        html,
        re.S,
    )
    total, hidden, inner = found.groups()
    words = " ".join(re.sub(r"<[^>]+>", "", inner).split())
    return total, hidden, words, re.findall(r'<a href="([^"]+)"', inner)


def test_the_step_table_shows_the_rows_of_the_elements_the_expansion_shows(
    client, alice, publish, settle
):
    saga = _per_line(publish, settle, 220)
    SagaStep.objects.filter(saga=saga, name="await_line", branch="201").update(status="failed")
    failed = SagaStep.objects.get(saga=saga, name="await_line", branch="201")
    client.force_login(alice)
    html = client.get(f"/sagas/{saga.pk}/").content.decode()
    rows = _table_rows(html)
    # The saga's own steps, then 50 elements of two rows: the failed one first, then by index.
    assert [r for r in rows if not r[1]] == [("reserve", ""), ("lines", "")]
    elements = [r for r in rows if r[1]]
    assert len(elements) == 100
    assert elements[:4] == [
        ("hold_line", "201"),
        ("await_line", "201"),
        ("hold_line", "0"),
        ("await_line", "0"),
    ]
    assert {int(r[1]) for r in elements} == {201, *range(49)}
    # The heading row says how many elements there are, and what is not shown.
    total, hidden, words, links = _elements_head(html)
    assert (total, hidden) == ("220", "170") and "170 not shown: 170 … waiting." in words
    assert links == [f"/sagas/{saga.pk}/?elements=100", f"/sagas/{saga.pk}/?elements=1000"]
    # The failed element step's row actions are on the page.
    assert f"/sagas/{saga.pk}/steps/{failed.key}/retry/" in html
    assert 'id="step-await_line-219"' not in html
    # Show more: the same ?elements= as the expansion, the next 50 elements' rows.
    more = client.get(f"/sagas/{saga.pk}/?elements=100", headers=HTMX).content.decode()
    assert len([r for r in _table_rows(more) if r[1]]) == 200
    assert _elements_head(more)[1] == "120"
    everything = client.get(f"/sagas/{saga.pk}/?elements=1000", headers=HTMX).content.decode()
    assert len([r for r in _table_rows(everything) if r[1]]) == 440
    assert _elements_head(everything)[1:3] == ("0", "lines: 220 elements, each below.")


def test_more_failed_elements_than_the_cap_show_the_first_50_and_count_the_rest(
    client, alice, publish, settle
):
    saga = _per_line(publish, settle, 200)
    failed = [str(i) for i in range(100, 160)]
    SagaStep.objects.filter(saga=saga, name="await_line", branch__in=failed).update(status="failed")
    client.force_login(alice)
    html = client.get(f"/sagas/{saga.pk}/").content.decode()
    shown = {int(r[1]) for r in _table_rows(html) if r[1]}
    assert shown == set(range(100, 150))
    _, hidden, words, _ = _elements_head(html)
    assert hidden == "150" and "150 not shown: 10 ✕ failed · 140 … waiting." in words
    more = client.get(f"/sagas/{saga.pk}/?elements=100").content.decode()
    assert set(range(100, 160)) <= {int(r[1]) for r in _table_rows(more) if r[1]}


def test_the_step_table_takes_the_same_queries_and_size_for_20_and_200_elements(
    client, alice, publish, settle
):
    small = _per_line(publish, settle, 20)
    large = _per_line(publish, settle, 200)
    client.force_login(alice)
    client.get(f"/sagas/{small.pk}/", headers=HTMX)
    counts, sizes, diagrams = [], [], []
    for saga in (small, large):
        with CaptureQueriesContext(connection) as queries:
            html = client.get(f"/sagas/{saga.pk}/", headers=HTMX).content.decode()
        counts.append(len(queries))
        sizes.append(len(html))
        diagrams.append(len(html.split("<svg")[1].split("</svg>")[0]))
        rows = [r for r in _table_rows(html) if r[1]]
        assert len(rows) == 2 * min(20 if saga is small else 200, 50)
    assert counts[0] == counts[1]
    # 200 elements: 50 elements' rows, so not ten times the page of 20 (about twice).
    assert sizes[1] < 3 * sizes[0]
    # The diagram draws a for_each as one lane that counts its elements, whatever their number.
    assert abs(diagrams[1] - diagrams[0]) < 20


def test_a_for_each_inside_a_branch_is_capped_and_the_other_branch_keeps_its_rows(
    client, alice, publish, settle
):
    publish(
        {
            "name": "split",
            "steps": [
                {
                    "name": "both",
                    "type": "parallel",
                    "branches": {
                        "per_line": [{**PER_LINE["steps"][1]}],
                        "office": [{"name": "await_office", "type": "wait", "event": "office.ok"}],
                    },
                }
            ],
        }
    )
    saga, _ = start_saga(workflow="split", input={"lines": list(range(60))})
    settle()
    client.force_login(alice)
    html = client.get(f"/sagas/{saga.pk}/").content.decode()
    rows = _table_rows(html)
    assert sorted(r[0] for r in rows if not r[1]) == ["await_office", "both", "lines"]
    assert len([r for r in rows if r[1]]) == 100
    assert _elements_head(html)[:2] == ("60", "10")
    assert re.search(r'class="elements-head depth-2" data-elements-head="lines"', html)
    heads = re.findall(r'data-branch-head="([^"]+)"', html)
    assert {"both › per_line", "both › office"} <= set(heads)
    assert len(heads) == 52  # both branches, and the 50 elements shown
