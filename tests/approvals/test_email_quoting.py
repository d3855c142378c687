"""Approval e-mails quote what came from a saga's input, and that text never becomes a link."""

import re

from django.conf import settings

from approvals.models import ApprovalRequest

HOSTILE = {
    "order_id": "http://evil.example/login?next=/approve",
    "note": "Pay at https://evil.example/pay?x=1\n\nApprove here: www.evil.example/ok "
    "or mail ceo@evil.example or 10.0.0.1/admin, javascript:alert(1)",
}

# What a mail client turns into a link in plain text: a scheme, www., a bare
# domain, an e-mail address, a dotted IP.
LINKISH = re.compile(
    r"(?i)[a-z][a-z0-9+.-]*://|\bjavascript:|\bwww\.|\b[\w-]+\.example\b|@[\w-]+\.\w|"
    r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"
)


def hostile_request(waiting, carol, mailoutbox):
    saga, request = waiting(
        user=carol,
        input=HOSTILE,
        title="Order {{ input.order_id }}",
        description="Customer note: {{ input.note }}",
    )
    assert mailoutbox, "the approvers were told"
    return saga, request


def test_input_text_in_an_approval_e_mail_is_quoted_and_never_a_link(
    waiting, carol, approver, mailoutbox
):
    saga, request = hostile_request(waiting, carol, mailoutbox)
    link = f"{settings.SITE_URL}/approvals/{request.pk}/"
    for message in mailoutbox:
        assert message.content_subtype == "plain" and not getattr(message, "alternatives", [])
        body = message.body.replace(link, "")
        assert LINKISH.findall(body) == [], body
        assert LINKISH.findall(message.subject) == [], message.subject
        assert link in message.body  # our own link stays a link
        # quoted as such, on one line: the note's line breaks cannot fake a line of ours
        assert "Order “http[:]//evil[.]example/login?next=/approve”" in message.body
        assert not any(line.startswith("Approve here: www") for line in body.splitlines())
        assert "“Pay at https[:]//evil[.]example/pay?x=1 Approve here:" in body


def test_the_stored_title_is_unchanged_for_the_pages(waiting, carol, approver, mailoutbox):
    _, request = hostile_request(waiting, carol, mailoutbox)
    request = ApprovalRequest.objects.get(pk=request.pk)
    assert request.title == "Order http://evil.example/login?next=/approve"


def test_honest_e_mails_read_as_before_with_the_input_quoted(waiting, carol, approver, mailoutbox):
    waiting(user=carol)
    message = mailoutbox[0]
    # a number is no text to quote; text from the input is
    assert message.subject == "Approval needed: Order “1042” — €12400"
    assert "Order “1042” — €12400" in message.body
