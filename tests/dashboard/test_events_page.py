"""The Events page: operators see deliveries and what became of them, and discard a kept one."""

from django.urls import reverse

from sagas.engine import deliver_event, start_saga
from sagas.models import InboundEvent
from sagas.q2.runner import settle

SHIP = {
    "name": "ship_it",
    "steps": [{"name": "await_pickup", "type": "wait", "event": "shipment.picked_up"}],
}


def test_operators_see_what_each_event_matched_or_until_when_it_is_kept(publish, client, alice):
    publish(SHIP)
    saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-10")
    settle()
    matched = deliver_event(type="shipment.picked_up", correlation_id="order-10", actor=alice)
    kept = deliver_event(type="shipment.picked_up", correlation_id="order-11", event_id="e-11")
    client.force_login(alice)
    page = client.get(reverse("event_list")).content.decode()
    assert f'id="event-{matched.id}" data-status="matched"' in page
    assert reverse("saga_detail", args=[saga.pk]) in page
    assert f'id="event-{kept.id}" data-status="kept"' in page and "kept until" in page
    assert reverse("event_discard", args=[kept.id]) in page
    assert reverse("event_discard", args=[matched.id]) not in page
    assert 'href="/events/"' in page  # in the navigation

    narrowed = client.get(reverse("event_list"), {"correlation_id": "order-11"}).content.decode()
    assert f'id="event-{kept.id}"' in narrowed and f'id="event-{matched.id}"' not in narrowed
    by_status = client.get(reverse("event_list"), {"status": "matched"}).content.decode()
    assert f'id="event-{matched.id}"' in by_status and f'id="event-{kept.id}"' not in by_status
    by_type = client.get(reverse("event_list"), {"type": "other"}).content.decode()
    assert "No event matches." in by_type
    bad = client.get(reverse("event_list"), {"status": "nonsense"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400 and "not valid" in bad.content.decode()


def test_a_kept_event_is_discarded_with_a_reason_in_place(publish, client, alice):
    kept = deliver_event(type="shipment.picked_up", correlation_id="order-12")
    client.force_login(alice)
    url = reverse("event_discard", args=[kept.id])
    panel = client.get(url, HTTP_HX_REQUEST="true")
    assert panel.status_code == 200 and "Confirm: Discard" in panel.content.decode()
    empty = client.post(url, {"reason": ""}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 400 and empty["HX-Retarget"] == "#event-panel"
    assert InboundEvent.objects.get(pk=kept.id).status == "kept"
    done = client.post(url, {"reason": "a test message"}, HTTP_HX_REQUEST="true")
    assert done.status_code == 200 and "discarded" in done.content.decode()
    assert done["HX-Trigger"] == "events-changed"
    row = InboundEvent.objects.get(pk=kept.id)
    assert row.status == "discarded" and row.discarded_by == alice
    again = client.post(url, {"reason": "twice"}, HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and "only a kept event" in again.content.decode()
    page = client.get(reverse("event_list")).content.decode()
    assert "a test message" in page and "alice" in page
    # without htmx: a redirect to the page
    other = deliver_event(type="shipment.picked_up", correlation_id="order-13")
    full = client.get(reverse("event_discard", args=[other.id]))
    assert full.status_code == 200 and "Confirm: Discard" in full.content.decode()
    assert (
        client.post(reverse("event_discard", args=[other.id]), {"reason": "x"}).status_code == 302
    )


def test_the_events_page_is_for_operators_only(client, bob):
    kept = deliver_event(type="shipment.picked_up", correlation_id="order-14")
    client.force_login(bob)
    assert client.get(reverse("event_list")).status_code == 403
    assert client.post(reverse("event_discard", args=[kept.id]), {"reason": "x"}).status_code == 403
    assert InboundEvent.objects.get(pk=kept.id).status == "kept"
    assert 'href="/events/"' not in client.get(reverse("saga_list")).content.decode()
