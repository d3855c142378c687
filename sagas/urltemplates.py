"""URLs and headers of outgoing requests with {{ … }} placeholders: checked at publish, filled at the call.

A value placed in a URL is percent-encoded for the part it lands in — a path
segment or a query value — so it can never add a segment, a parameter or a
fragment, and a value that would be a whole `.` or `..` segment fails the
step. Scheme, host and port are the document's own: a template there (or in
the fragment, which is never sent) is refused at publish, and checked again at
the call. Header names are fixed; a filled-in header value may not break the
line. Substitution is one pass: a value is never read for placeholders again,
so input that looks like `{{ secrets.X }}` stays text.
"""

import re
from urllib.parse import quote, urlsplit, urlunsplit

from .definitions import TEMPLATE_RE, as_text, lookup, render

# RFC 9110 token characters.
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Set from the URL and the body; a document may not say otherwise.
RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
LINE_BREAKS = ("\r", "\n", "\x00")


class TemplateError(ValueError):
    """A URL or header that cannot be filled in safely; the message says why."""


def _malformed(text):
    """A `{{` or `}}` that is not part of a placeholder `{{ path.to.value }}`."""
    rest = TEMPLATE_RE.sub("", text)
    return "{{" in rest or "}}" in rest


def check_url(url, path, errors):
    """Add an error per problem of a request's URL template; returns its parts, or None."""
    if not isinstance(url, str) or not url:
        errors.add(path, "required: an http(s) URL")
        return None
    if _malformed(url):
        errors.add(path, "a placeholder must read {{ input.name }} (letters, digits, _ and .)")
        return None
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        errors.add(path, f"{url!r} is not a URL: {exc}")
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        errors.add(path, f"{url!r} is not an http(s) URL")
        return None
    if TEMPLATE_RE.search(parts.netloc):
        errors.add(
            path,
            "scheme, host and port come from the document, never from a template "
            f"(found one in {parts.netloc!r})",
        )
        return None
    if TEMPLATE_RE.search(parts.fragment):
        errors.add(path, "no template in the fragment (#…): it is never sent")
        return None
    try:
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError as exc:
        errors.add(path, f"{url!r} is not a URL: {exc}")
        return None
    if not parts.hostname:
        errors.add(path, f"{url!r} is not an http(s) URL")
        return None
    return parts


def check_headers(headers, path, errors, *, only_secrets=False):
    """Add an error per bad header: names fixed and valid, values text on one line."""
    if not isinstance(headers, dict):
        errors.add(path, "must be a mapping of header names to values")
        return
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            errors.add(path, f"{name!r} is not a header name (letters, digits and -; no template)")
            continue
        where = f"{path}.{name}"
        if name.lower() in RESERVED_HEADERS:
            errors.add(where, f"{name} is set from the URL and the body, not by a header")
            continue
        if isinstance(value, (dict, list)):
            errors.add(where, "must be text")
            continue
        text = as_text(value)
        if any(c in text for c in LINE_BREAKS):
            errors.add(where, "must be one line (no line breaks or NUL)")
        elif _malformed(text):
            errors.add(where, "a placeholder must read {{ secrets.NAME }} or {{ input.name }}")
        elif only_secrets:
            for match in TEMPLATE_RE.finditer(text):
                if not match.group(1).startswith("secrets."):
                    errors.add(where, "a webhook header may use only {{ secrets.NAME }}")


def _fill_segment(segment, scope):
    filled = TEMPLATE_RE.sub(lambda m: quote(as_text(lookup(scope, m.group(1))), safe=""), segment)
    if filled in (".", "..") and TEMPLATE_RE.search(segment):
        raise TemplateError(
            f"the value put in {segment!r} is {filled!r}, which cannot be a path segment"
        )
    return filled


def fill_url(url, scope):
    """The URL with each placeholder's value encoded for its place; TemplateError if unsafe."""
    parts = urlsplit(url)
    if TEMPLATE_RE.search(parts.scheme + parts.netloc + parts.fragment):
        # Published before these rules: a template may never choose where a request goes.
        raise TemplateError("scheme, host, port and fragment may not come from a template")
    path = "/".join(_fill_segment(segment, scope) for segment in parts.path.split("/"))
    query = TEMPLATE_RE.sub(
        lambda m: quote(as_text(lookup(scope, m.group(1))), safe=""), parts.query
    )
    filled = urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))
    after = urlsplit(filled)
    if (after.scheme, after.netloc) != (parts.scheme, parts.netloc):
        raise TemplateError("a value changed where the request goes")
    return filled


def fill_headers(headers, scope):
    """{name: value} with the values filled in as text; TemplateError for a line break."""
    filled = {}
    for name, value in (headers or {}).items():
        text = as_text(render(value, scope))
        if any(c in text for c in LINE_BREAKS):
            raise TemplateError(f"header {name}: the value filled in holds a line break or NUL")
        filled[str(name)] = text
    return filled
