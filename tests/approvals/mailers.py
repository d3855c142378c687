"""A mail backend for tests that fails for chosen addresses a given number of times."""

from smtplib import SMTPRecipientsRefused

from django.core.mail.backends.locmem import EmailBackend

# address -> how many more sends to it fail
FAILURES = {}


class FlakyBackend(EmailBackend):
    def send_messages(self, messages):
        for message in messages:
            for address in message.to:
                if FAILURES.get(address, 0) > 0:
                    FAILURES[address] -= 1
                    raise SMTPRecipientsRefused({address: (450, b"mailbox busy")})
        return super().send_messages(messages)
