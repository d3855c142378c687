"""A JSON parser that refuses what PostgreSQL cannot store, before any view sees it."""

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import BaseParser, JSONParser

from sagas import documents


def unstorable(value, path=""):
    """The path of the first string (or key) with a NUL or a lone surrogate, else None."""
    if isinstance(value, str):
        if "\x00" in value:
            return path or "(body)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "(body)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            found = unstorable(key, sub) or unstorable(item, sub)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = unstorable(item, f"{path}[{i}]")
            if found:
                return found
    return None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply") from None
        # One level for the body's own envelope ({"input": …}); what it carries
        # is held to the cap itself where it is used (start, events, publish).
        deep = documents.too_deep(data, limit=documents.max_depth() + 1)
        if deep is not None:
            raise ValidationError({documents.path_text(deep): [documents.too_deep_message()]})
        bad = unstorable(data)
        if bad:
            raise ParseError(f"{bad}: NUL characters and lone surrogates cannot be stored")
        return data


class YAMLTextParser(BaseParser):
    """A workflow document as YAML text (`Content-Type: application/yaml`), parsed by the view."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return stream.read().decode("utf-8") if stream is not None else ""
        except UnicodeDecodeError as exc:
            raise ParseError(f"the YAML document is not UTF-8: {exc}") from None
