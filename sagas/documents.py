"""Bounded parsing: every YAML/JSON document and JSON value the product reads has a size and a depth cap.

YAML anchors and aliases are refused outright: a few hundred bytes of nested
aliases expand to millions of nodes the moment anything walks the result (a
JSON dump, the validator). Nesting is capped while the YAML is composed and
before a parsed JSON value is walked, so a deep document is a clear error with
its path, never a RecursionError. The caps are settings (README, Configuration):
`SAGAS_DOCUMENT_MAX_BYTES` and `SAGAS_DOCUMENT_MAX_DEPTH`.
"""

import yaml
from django.conf import settings

DEFAULT_MAX_BYTES = 256 * 1024
DEFAULT_MAX_DEPTH = 32


class DocumentLimit(ValueError):
    """A document over a limit; `where` is its path (or line and column), `message` says why."""

    def __init__(self, where, message):
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def max_bytes():
    return getattr(settings, "SAGAS_DOCUMENT_MAX_BYTES", DEFAULT_MAX_BYTES)


def max_depth():
    return getattr(settings, "SAGAS_DOCUMENT_MAX_DEPTH", DEFAULT_MAX_DEPTH)


def too_deep_message():
    return f"nested deeper than {max_depth()} levels"


def path_text(parts, root=""):
    """("steps", 0, "when") → "steps[0].when"; `root` is the name of the whole value."""
    text = root
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def max_file_bytes():
    """A file of several documents (import, loadworkflows) may hold four documents' worth."""
    return 4 * max_bytes()


def check_size(text, *, what="the document"):
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > max_bytes():
        raise DocumentLimit("(document)", f"{what} is {size} bytes; at most {max_bytes()} bytes")


def too_deep(value, *, limit=None):
    """The path (a tuple) of the first list or mapping nested deeper than `limit`, else None.

    Walks with its own stack, so a value nested any depth is judged without recursion.
    """
    limit = max_depth() if limit is None else limit
    stack = [(value, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > limit:
            return path
        items = node.items() if isinstance(node, dict) else enumerate(node)
        children = [(item, (*path, key), depth + 1) for key, item in items]
        stack.extend(reversed(children))
    return None


def check_depth(value, *, root=""):
    """Raise DocumentLimit with the path when `value` is nested deeper than the cap."""
    path = too_deep(value)
    if path is not None:
        raise DocumentLimit(path_text(path, root), too_deep_message())


# --- YAML -----------------------------------------------------------------------


def _where(mark):
    return f"line {mark.line + 1}, column {mark.column + 1}"


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases, and with a cap on nesting.

    The composer builds the node tree recursively; counting the collections it
    is inside of stops a deep document at the cap (with its path), long before
    Python's recursion limit.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._path = []  # keys and indexes down to the node being composed
        self._depth = 0  # collections the node being composed is inside of

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise DocumentLimit(
                _where(event.start_mark),
                "YAML anchors and aliases (&name, *name) are not allowed in documents",
            )
        collection = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if index is not None and parent is not None:
            if isinstance(index, int):
                self._path.append(index)
            else:
                self._path.append(index.value if isinstance(index, yaml.ScalarNode) else "?")
        if collection:
            self._depth += 1
            if self._depth > max_depth():
                raise DocumentLimit(path_text(self._path), too_deep_message())
        try:
            return super().compose_node(parent, index)
        finally:
            if collection:
                self._depth -= 1
            if index is not None and parent is not None:
                self._path.pop()


def _loaded(load, text):
    check_size(text)
    try:
        return load(text)
    except DocumentLimit:
        raise
    except yaml.YAMLError:
        raise
    except (ValueError, OverflowError) as exc:
        # A value the constructors refuse, such as an integer of 5,000 digits.
        raise DocumentLimit("(document)", f"holds a value that cannot be read: {exc}") from None


def load_yaml(text):
    """One YAML (or JSON) document, bounded; raises DocumentLimit or yaml.YAMLError."""
    return _loaded(lambda t: yaml.load(t, Loader=BoundedLoader), text)


def load_yaml_all(text, *, max_total=None):
    """Every document of a YAML stream, bounded (each, and the whole stream by `max_total`)."""
    if max_total is not None:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_total:
            raise DocumentLimit("(file)", f"is {size} bytes; at most {max_total} bytes")
    else:
        check_size(text)

    def load_all(t):
        return list(yaml.load_all(t, Loader=BoundedLoader))

    try:
        return load_all(text)
    except (DocumentLimit, yaml.YAMLError):
        raise
    except (ValueError, OverflowError) as exc:
        raise DocumentLimit("(document)", f"holds a value that cannot be read: {exc}") from None
