"""The text of approval e-mails: what came from a saga's input is quoted, and never a link.

The request's title and description are templates filled with the saga's
input (and earlier results). In a plain-text e-mail a mail client turns
anything that looks like an address into a link, so a saga's input could put
a convincing link next to ours. Here each value filled in is put on one line,
between “ ”, and defanged (`https[:]//evil[.]example`): it reads as what it
is, quoted text, and the e-mail's only link is the decision page's.
"""

import re

from sagas import engine
from sagas.actions import saga_scope
from sagas.definitions import TEMPLATE_RE, as_text, lookup

# scheme://, and the schemes that need no slashes
_SCHEME = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]*):(?=//)|\b(mailto|javascript|vbscript|data|tel|sms|file|callto):"
)
# a dot (or a full stop other scripts use) between labels of a name with an alphabetic
# top label, or of a dotted IPv4 address
_DOTS = "[.\u3002\uff0e\uff61]"
_NAME = re.compile(
    rf"(?:[^\W_][\w-]*{_DOTS})+[^\W\d_]{{2,}}\b|\b\d{{1,3}}(?:{_DOTS}\d{{1,3}}){{3}}\b"
)
_WHITESPACE = re.compile(r"\s+")


def defang(text):
    """The text with nothing a mail client would make a link of, still readable."""
    text = _SCHEME.sub(lambda m: f"{m.group(1) or m.group(2)}[:]", text)
    return _NAME.sub(lambda m: re.sub(_DOTS, "[.]", m.group(0)), text)


def quoted(value):
    """A value filled into an e-mail: text on one line, defanged, between “ ”; numbers as they are."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return as_text(value)
    text = _WHITESPACE.sub(" ", as_text(value)).strip()
    return f"“{defang(text)}”"


def _fill(template, scope):
    if not isinstance(template, str):
        return ""
    return TEMPLATE_RE.sub(lambda m: quoted(lookup(scope, m.group(1))), template)


def email_texts(request):
    """(title, description) of `request` for an e-mail, its input quoted."""
    saga = request.saga
    spec = engine.step_spec(saga, request.step)
    scope = saga_scope(saga, list(saga.steps.order_by("index")))
    if request.step.item is not None:  # an approval inside a for_each element
        scope["item"], scope["item_index"] = (
            request.step.item.get("value"),
            request.step.item.get("index"),
        )
    title = _fill(spec.get("title") or request.step.name.replace("_", " ").capitalize(), scope)
    description = _fill(spec.get("description", ""), scope)
    return (title.strip() or request.step.name)[:300], description
