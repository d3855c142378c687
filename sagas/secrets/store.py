"""Where secrets come from, and where a document may refer to them."""

import os
import re

ENV_PREFIX = "SAGAS_SECRET_"
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
# {{ secrets.NAME }}, and anything else a person may have meant by it.
REFERENCE_RE = re.compile(r"\{\{\s*secrets\b([^}]*)\}\}")


class MissingSecret(LookupError):
    """A secret a document refers to is set nowhere (any more)."""

    def __init__(self, name):
        super().__init__(
            f"secret {name!r} is not set: set {ENV_PREFIX}{name} or add it in the admin (Secrets)"
        )
        self.name = name


def environment_names():
    return {key[len(ENV_PREFIX) :] for key in os.environ if key.startswith(ENV_PREFIX)} - {""}


def known_names():
    """Every secret that resolves now: the admin's and the environment's (names only)."""
    from .models import Secret

    return set(Secret.objects.values_list("name", flat=True)) | environment_names()


def resolve(names):
    """{name: value} for each name; MissingSecret for the first that is set nowhere.

    The admin's value wins over the environment's: an admin who rotates a
    secret in the admin expects the new value to be the one used.
    """
    from .models import Secret

    names = sorted(set(names))
    values = dict(Secret.objects.filter(name__in=names).values_list("name", "value"))
    for name in names:
        if name not in values:
            value = os.environ.get(ENV_PREFIX + name)
            if value is None:
                raise MissingSecret(name)
            values[name] = value
    return values


def _strings(value, path):
    """(path, text) of every string in a nested value, keys included."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            yield where, node
        elif isinstance(node, dict):
            for key, item in node.items():
                sub = f"{where}.{key}"
                if isinstance(key, str):
                    yield sub, key
                stack.append((item, sub))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                stack.append((item, f"{where}[{i}]"))


def referenced_names(value):
    """The secret names `{{ secrets.NAME }}` placeholders in `value` refer to."""
    names = set()
    for _, text in _strings(value, ""):
        for match in REFERENCE_RE.finditer(text):
            names.add(match.group(1).strip().removeprefix("."))
    return names


def check_references(value, path, errors, *, allowed, known=None):
    """Add an error per misplaced, malformed or unknown `{{ secrets… }}` in `value`.

    `allowed`: whether secrets resolve at this place at all; `known`: the names
    that exist (None: existence is not checked, as when validating without a database).
    """
    for where, text in _strings(value, path):
        for match in REFERENCE_RE.finditer(text):
            rest = match.group(1).strip()
            name = rest.removeprefix(".")
            if not allowed:
                errors.add(
                    where,
                    "secrets are resolved only in an http step's request (headers, url, body) "
                    "and in webhook headers",
                )
            elif not rest.startswith(".") or not NAME_RE.match(name):
                errors.add(
                    where,
                    f"{match.group(0)!r}: name one secret, {{{{ secrets.NAME }}}}, in upper case "
                    "letters, digits and _",
                )
            elif known is not None and name not in known:
                errors.add(
                    where,
                    f"unknown secret {name!r}: set {ENV_PREFIX}{name} or add it in the admin "
                    "(Secrets)",
                )
