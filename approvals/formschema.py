"""Approval forms: the `form:` subset of JSON Schema, checked at publish, filled at a decision.

A form is a flat JSON Schema object whose properties are strings, numbers,
integers or booleans. The subset is ours (check_form, called by
approvals/kind.py at publish, with a path per refusal); the filled data is
checked by `jsonschema` against the same schema (it is in the lock file and
already checks saga inputs in sagas/definitions.py), so what a form promises
and what a decision stores cannot drift apart.
"""

import jsonschema

from sagas.engine import InvalidInput

FIELD_TYPES = ("string", "number", "integer", "boolean")
FORM_KEYS = {"type", "properties", "required", "title", "description"}
FIELD_KEYS = {"type", "enum", "format", "minimum", "maximum", "maxLength", "title", "description"}
MAX_FIELDS = 30
MAX_TEXT = 5000  # a string field without maxLength still has a ceiling


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_form(form, path, errors):
    """Add an error per path where `form` leaves the subset (types, keys, bounds)."""
    if not isinstance(form, dict):
        errors.add(path, "must be a JSON Schema object: {type: object, properties: {...}}")
        return
    for key in form:
        if key not in FORM_KEYS:
            errors.add(
                f"{path}.{key}", f"not supported in a form (use {', '.join(sorted(FORM_KEYS))})"
            )
    if form.get("type", "object") != "object":
        errors.add(f"{path}.type", "must be object")
    for key in ("title", "description"):
        if key in form and not isinstance(form[key], str):
            errors.add(f"{path}.{key}", "must be text")
    properties = form.get("properties")
    if not isinstance(properties, dict) or not properties:
        errors.add(f"{path}.properties", "required: a mapping of at least one field")
        properties = {}
    if len(properties) > MAX_FIELDS:
        errors.add(f"{path}.properties", f"at most {MAX_FIELDS} fields")
    for name, field in properties.items():
        _check_field(name, field, f"{path}.properties.{name}", errors)
    required = form.get("required", [])
    if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
        errors.add(f"{path}.required", "must be a list of field names")
    else:
        for i, name in enumerate(required):
            if name not in properties:
                errors.add(f"{path}.required[{i}]", f"no field {name!r} in properties")


def _check_field(name, field, path, errors):
    if not isinstance(name, str) or not name.isidentifier():
        # A name is read in templates and conditions: steps.x.result.data.<name>.
        errors.add(path, "a field name is letters, digits and _ (not starting with a digit)")
    if not isinstance(field, dict):
        errors.add(path, "must be a mapping with a type")
        return
    for key in field:
        if key not in FIELD_KEYS:
            errors.add(
                f"{path}.{key}", f"not supported in a form (use {', '.join(sorted(FIELD_KEYS))})"
            )
    kind = field.get("type")
    if kind not in FIELD_TYPES:
        errors.add(f"{path}.type", f"must be one of {', '.join(FIELD_TYPES)}")
        return
    for key in ("title", "description"):
        if key in field and not isinstance(field[key], str):
            errors.add(f"{path}.{key}", "must be text")
    numeric = kind in ("number", "integer")
    for key in ("minimum", "maximum"):
        if key in field and (not numeric or not _is_number(field[key])):
            errors.add(f"{path}.{key}", "only for number or integer fields, and a number")
    if numeric and _is_number(field.get("minimum")) and _is_number(field.get("maximum")):
        if field["minimum"] > field["maximum"]:
            errors.add(f"{path}.maximum", "must not be below minimum")
    if "maxLength" in field:
        value = field["maxLength"]
        if kind != "string" or not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.add(f"{path}.maxLength", "only for string fields, a whole number ≥ 1")
    if "format" in field and (kind != "string" or field["format"] != "date"):
        errors.add(f"{path}.format", "only format: date, on a string field")
    if "enum" in field:
        choices = field["enum"]
        if not isinstance(choices, list) or not choices:
            errors.add(f"{path}.enum", "must be a non-empty list")
        elif not all(_fits(kind, c) for c in choices):
            errors.add(f"{path}.enum", f"every choice must be a {kind}")


def _fits(kind, value):
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return _is_number(value)


# --- at a decision --------------------------------------------------------------


def _strict(form):
    """The form as the validator reads it: no unknown fields, text capped."""
    properties = {}
    for name, field in form["properties"].items():
        field = dict(field)
        if field["type"] == "string":
            field["maxLength"] = min(field.get("maxLength", MAX_TEXT), MAX_TEXT)
        properties[name] = field
    return {
        "type": "object",
        "properties": properties,
        "required": list(form.get("required", [])),
        "additionalProperties": False,
    }


def clean_data(form, data):
    """The data checked against `form`; InvalidInput with an error per field (data.<field>)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput("the form's data must be a JSON object", {"data": ["must be an object"]})
    validator = jsonschema.Draft202012Validator(
        _strict(form), format_checker=jsonschema.FormatChecker(["date"])
    )
    fields = {}
    for name, value in data.items():
        # PostgreSQL's jsonb cannot hold NUL; a browser's form can send it.
        if isinstance(value, str) and "\x00" in value:
            fields.setdefault(f"data.{name}", []).append("must not contain NUL characters")
    for error in validator.iter_errors(data):
        if error.validator == "required":
            name = error.message.split("'")[1]
            fields.setdefault(f"data.{name}", []).append("required")
        elif error.validator == "additionalProperties":
            for name in sorted(set(data) - set(form["properties"])):
                fields.setdefault(f"data.{name}", []).append("not a field of this form")
        else:
            name = error.absolute_path[0] if error.absolute_path else ""
            fields.setdefault(f"data.{name}", []).append(_message(error))
    if fields:
        first = next(iter(fields))
        raise InvalidInput(
            f"the form is not filled in correctly: {first} {fields[first][0]}", fields
        )
    return data


def _message(error):
    """Words for a person, not the validator's repr of the value."""
    schema = error.schema
    return {
        "type": f"must be {'a whole number' if schema.get('type') == 'integer' else 'a ' + str(schema.get('type'))}",
        "enum": "must be one of " + ", ".join(str(c) for c in schema.get("enum", [])),
        "minimum": f"must be at least {schema.get('minimum')}",
        "maximum": f"must be at most {schema.get('maximum')}",
        "maxLength": f"must be at most {schema.get('maxLength')} characters",
        "format": "must be a date (YYYY-MM-DD)",
    }.get(error.validator, error.message)


def field_order(form):
    """The order a page shows the fields in: the required ones as `required` lists them,
    then the others by name. (PostgreSQL's jsonb keeps no key order, so the order
    of `properties` in the document is lost at publish; a list keeps its order.)"""
    required = [n for n in form.get("required", []) if n in form["properties"]]
    return required + sorted(n for n in form["properties"] if n not in required)


def fields_of(form, values=None, errors=None):
    """The form's fields as a page shows them: name, label, type, bounds, value, errors."""
    if not form:
        return []
    required = set(form.get("required", []))
    values = values or {}
    errors = errors or {}
    fields = []
    for name in field_order(form):
        field = form["properties"][name]
        kind = field["type"]
        fields.append(
            {
                "name": name,
                "label": field.get("title") or name.replace("_", " ").capitalize(),
                "help": field.get("description", ""),
                "type": kind,
                "input": _input_type(field),
                "required": name in required,
                "choices": field.get("enum"),
                "minimum": field.get("minimum"),
                "maximum": field.get("maximum"),
                "max_length": field.get("maxLength"),
                "step": "1" if kind == "integer" else "any",
                "value": values.get(name, ""),
                "errors": errors.get(f"data.{name}", []),
            }
        )
    return fields


def _input_type(field):
    if field.get("enum"):
        return "select"
    if field["type"] == "boolean":
        return "checkbox"
    if field["type"] in ("number", "integer"):
        return "number"
    return "date" if field.get("format") == "date" else "text"


def from_post(form, post, prefix="data."):
    """What an HTML form posted, as JSON values: numbers as numbers, a checkbox as a boolean.

    Text that is not a number stays text, so the validator can say which field is wrong.
    Empty fields are left out (a required one is then reported as required).
    """
    data = {}
    for name, field in (form or {}).get("properties", {}).items():
        kind = field["type"]
        raw = post.get(prefix + name)
        if kind == "boolean":
            data[name] = raw in ("on", "true", "1")
            continue
        if raw is None or not raw.strip():
            continue
        raw = raw.strip()
        if kind in ("number", "integer"):
            data[name] = _number(raw, kind)
        else:
            data[name] = raw
    return data


def _number(raw, kind):
    try:
        value = float(raw)
    except ValueError:
        return raw
    if value != value or value in (float("inf"), float("-inf")):
        return raw
    if kind == "integer" or value.is_integer() and "." not in raw and "e" not in raw.lower():
        return int(value) if value.is_integer() else value
    return value
