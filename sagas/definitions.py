"""Workflow documents: parsing YAML/JSON, validation with an error per path, templating."""

import json
import re
from dataclasses import dataclass, field

import jsonschema
import yaml

from . import documents, secrets
from . import kinds as kind_registry
from .search import check_search

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h|d)$")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
WHEN_RE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|>=|<=|>|<)\s*(.+?)\s*$")
TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
# A `when:` is one comparison: longer text is no honest condition, and its
# regular expression would take quadratic time on it.
MAX_EXPRESSION = 1000

DOCUMENT_KEYS = {"name", "description", "input_schema", "search", "steps"}
COMMON_STEP_KEYS = {
    "name",
    "type",
    "description",
    "when",
    "timeout",
    "retry",
    "compensation_retry",
    "on_failure",
}
RETRY_KEYS = {"max_attempts", "backoff", "max_backoff"}
DEFAULT_RETRY = {"max_attempts": 3, "backoff": "1s", "max_backoff": "1m"}
DEFAULT_COMPENSATION_RETRY = {"max_attempts": 5, "backoff": "1s", "max_backoff": "1m"}


class DefinitionError(Exception):
    """A workflow document that cannot be used; `errors` maps each path to its messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(
            "; ".join(f"{path}: {msg}" for path, msgs in errors.items() for msg in msgs)
        )


@dataclass
class Errors:
    """Collects every problem of a document, each under the path where it is."""

    by_path: dict = field(default_factory=dict)

    def add(self, path, message):
        self.by_path.setdefault(path or "(document)", []).append(message)

    def __bool__(self):
        return bool(self.by_path)


def parse_duration(value):
    """'30s' → 30.0 seconds; raises ValueError with a message that says the format."""
    if isinstance(value, str):
        match = DURATION_RE.match(value.strip())
        if match:
            return int(match.group(1)) * DURATION_UNITS[match.group(2)]
    raise ValueError(
        f"malformed duration {value!r}: use a whole number and a unit, like 30s, 5m, 2h, 1d"
    )


def check_duration(value, path, errors, *, allow_zero=False):
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        errors.add(path, str(exc))
        return None
    if seconds <= 0 and not allow_zero:
        errors.add(path, "must be longer than zero")
    return seconds


def check_keys(mapping, allowed, path, errors):
    for key in mapping:
        if key not in allowed:
            errors.add(f"{path}.{key}" if path else str(key), "unknown key")


def check_retry(policy, path, errors):
    if not isinstance(policy, dict):
        errors.add(path, "must be a mapping with max_attempts, backoff, max_backoff")
        return
    check_keys(policy, RETRY_KEYS, path, errors)
    attempts = policy.get("max_attempts", 1)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
        errors.add(f"{path}.max_attempts", "must be a whole number from 1 to 100")
    backoff = check_duration(
        policy.get("backoff", "1s"), f"{path}.backoff", errors, allow_zero=True
    )
    ceiling = check_duration(
        policy.get("max_backoff", "1h"), f"{path}.max_backoff", errors, allow_zero=True
    )
    if backoff is not None and ceiling is not None and ceiling < backoff:
        errors.add(f"{path}.max_backoff", "must not be shorter than backoff")


def check_when(expression, path, errors):
    if isinstance(expression, str) and len(expression) > MAX_EXPRESSION:
        errors.add(
            path, f"is {len(expression)} characters; a condition is at most {MAX_EXPRESSION}"
        )
        return
    if not isinstance(expression, str) or not WHEN_RE.match(expression):
        errors.add(path, "must read like 'input.amount > 1000' (a path, an operator, a JSON value)")
        return
    if WHEN_RE.match(expression).group(1).split(".")[0] == "secrets":
        errors.add(path, "a condition cannot read secrets")
        return
    literal = WHEN_RE.match(expression).group(3)
    try:
        _literal(literal)
    except documents.DocumentLimit as exc:
        errors.add(path, f"its value is {exc.message}")
    except (ValueError, RecursionError):
        errors.add(path, f'{literal[:100]!r} is not a JSON value (quote strings: "gold")')


def _literal(text):
    """The JSON value on the right of a condition; nesting is capped like any document's."""
    value = json.loads(text)
    documents.check_depth(value)
    return value


def load_document(text):
    """Parse YAML or JSON text into a dict; DefinitionError when it is neither."""
    try:
        document = documents.load_yaml(text)  # no aliases; size and depth capped
    except documents.DocumentLimit as exc:
        raise DefinitionError({exc.where: [exc.message]}) from None
    except yaml.YAMLError as exc:
        raise yaml_error(exc) from None
    if not isinstance(document, dict):
        raise DefinitionError({"(document)": ["must be a mapping with name and steps"]})
    return document


def yaml_error(exc):
    """A DefinitionError saying where YAML parsing failed."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
    problem = getattr(exc, "problem", exc)
    return DefinitionError({where: [f"not valid YAML or JSON: {problem}"]})


def validate(document, *, context=None):
    """Check a whole workflow document; raise DefinitionError listing every problem.

    `context` carries what validation may consult outside the document (for
    example which users and groups exist); kinds read it as they need.
    """
    errors = Errors()
    context = context or {}
    if not isinstance(document, dict):
        raise DefinitionError({"(document)": ["must be a mapping with name and steps"]})
    check_bounds(document)
    check_keys(document, DOCUMENT_KEYS, "", errors)
    name = document.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        errors.add("name", "required: letters, digits, _ . - (starting with a letter)")
    if "description" in document and not isinstance(document["description"], str):
        errors.add("description", "must be text")
    if "input_schema" in document:
        schema = document["input_schema"]
        if not isinstance(schema, dict):
            errors.add("input_schema", "must be a JSON Schema object")
        else:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                errors.add("input_schema", f"not a valid JSON Schema: {exc.message}")
    if "search" in document:
        check_search(document["search"], errors)
    for key in ("name", "description", "input_schema", "search"):
        secrets.check_references(document.get(key), key, errors, allowed=False)
    steps = document.get("steps")
    if not isinstance(steps, list) or not steps:
        errors.add("steps", "required: a list of at least one step")
        steps = []
    check_steps(steps, "steps", errors, context, seen={}, depth=0)
    check_children(document, steps, errors, context)
    if errors:
        raise DefinitionError(errors.by_path)
    return document


# Nested `parallel` steps, at most: deeper trees are hard to read and to undo by hand.
MAX_PARALLEL_DEPTH = 3


def check_steps(steps, path, errors, context, *, seen, depth, in_element=False):
    """Check a list of steps at `path` (the document's, or a branch's), and the lists inside them.

    `seen` maps each step name to where it was first defined: names are unique
    across the whole document, branches included, so `steps.NAME` is unambiguous.
    """
    for i, step in enumerate(steps):
        here = f"{path}[{i}]"
        if not isinstance(step, dict):
            errors.add(here, "must be a mapping with name and type")
            continue
        step_name = step.get("name")
        if not isinstance(step_name, str) or not NAME_RE.match(step_name):
            errors.add(f"{here}.name", "required: letters, digits, _ . - (starting with a letter)")
        elif step_name in seen:
            errors.add(
                f"{here}.name", f"duplicate step name {step_name!r} (also {seen[step_name]})"
            )
        kind = kind_registry.get(step.get("type"))
        if kind is None:
            known = ", ".join(sorted(kind_registry.names()))
            errors.add(f"{here}.type", f"unknown step type {step.get('type')!r} (known: {known})")
            continue
        check_step(step, kind, here, errors, context)
        if kind.opens_branches:
            if depth >= MAX_PARALLEL_DEPTH:
                errors.add(here, f"more than {MAX_PARALLEL_DEPTH} levels of nested parallel steps")
            reads = step.get("for_each")
            if isinstance(reads, str) and reads.split(".")[0] == "item" and not in_element:
                errors.add(f"{here}.for_each", "reads item, but is inside no for_each element")
            if isinstance(reads, str) and reads.startswith("steps."):
                earlier = reads.split(".")[1]
                if earlier not in seen:
                    errors.add(f"{here}.for_each", f"reads step {earlier!r}, which is not earlier")
        if isinstance(step_name, str) and step_name not in seen:
            seen[step_name] = here
        for suffix, branch, inner in kind.nested(step):
            check_steps(
                inner,
                f"{here}{suffix}",
                errors,
                context,
                seen=seen,
                depth=depth + 1,
                in_element=in_element or branch is None,  # a for_each's element steps
            )


def child_workflows(steps, path="steps"):
    """(path, workflow) of every `saga` step in these steps and their branches."""
    found = []
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, dict):
            continue
        kind = kind_registry.get(step.get("type"))
        if kind is None:
            continue
        if kind.starts_child and isinstance(step.get("workflow"), str):
            found.append((f"{path}[{i}].workflow", step["workflow"]))
        for suffix, _branch, inner in kind.nested(step):
            found += child_workflows(inner, f"{path}[{i}]{suffix}")
    return found


def check_children(document, steps, errors, context):
    """No workflow runs itself as a child, however far down (context["workflows"]: the published)."""
    published = context.get("workflows")
    name = document.get("name")
    if published is None or not isinstance(name, str):
        return
    graph = {n: {w for _, w in child_workflows(doc.get("steps"))} for n, doc in published.items()}
    graph[name] = {w for _, w in child_workflows(steps)}
    for path, child in child_workflows(steps):
        chain, stack, seen = None, [(child, [name, child])], set()
        while stack and chain is None:
            current, trail = stack.pop()
            if current == name:
                chain = trail
            elif current not in seen:
                seen.add(current)
                stack += [(nxt, [*trail, nxt]) for nxt in graph.get(current, ())]
        if chain is not None:
            errors.add(path, f"a cycle of child workflows: {' → '.join(chain)}")


def check_step(step, kind, path, errors, context):
    """The keys every step may have, then the kind's own."""
    check_keys(step, COMMON_STEP_KEYS | kind.keys, path, errors)
    for key, value in step.items():
        secrets.check_references(
            value,
            f"{path}.{key}",
            errors,
            allowed=key in kind.secret_keys,
            known=context.get("secrets"),
        )
    if "timeout" in step:
        check_duration(step["timeout"], f"{path}.timeout", errors)
    if "retry" in step:
        check_retry(step["retry"], f"{path}.retry", errors)
    if "compensation_retry" in step:
        check_retry(step["compensation_retry"], f"{path}.compensation_retry", errors)
    if "on_failure" in step and step["on_failure"] not in ("compensate", "pause"):
        errors.add(f"{path}.on_failure", "must be compensate or pause")
    if "when" in step:
        check_when(step["when"], f"{path}.when", errors)
    if "description" in step and not isinstance(step["description"], str):
        errors.add(f"{path}.description", "must be text")
    kind.validate(step, path, errors, context)


def check_bounds(document):
    """A parsed document (from YAML, JSON or Python) is no deeper and no larger than the caps."""
    try:
        documents.check_depth(document)
        documents.check_size(json.dumps(document, default=str, ensure_ascii=False))
    except documents.DocumentLimit as exc:
        raise DefinitionError({exc.where: [exc.message]}) from None


# id(schema) -> (schema, its validator): a published document is one shared object
# per process (sagas/engine/specs.py), so its validator is built once, not per start.
_validators = {}


def _validator(schema):
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    if len(_validators) >= 256:
        _validators.clear()  # documents read afresh (not shared) each make a new entry
    validator = jsonschema.Draft202012Validator(schema)
    _validators[id(schema)] = (schema, validator)
    return validator


def validate_input(document, data):
    """Check a saga's input against the workflow's input_schema; DefinitionError by field path."""
    if not isinstance(data, dict):
        raise DefinitionError({"input": ["must be a JSON object"]})
    schema = document.get("input_schema")
    if not schema:
        return
    validator = _validator(schema)
    errors = Errors()
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = "input" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        errors.add(path, error.message)
    if errors:
        raise DefinitionError(errors.by_path)


# --- values at run time ------------------------------------------------------


def lookup(scope, dotted):
    """Follow a dotted path through dicts (and list indexes); None when it leads nowhere."""
    value = scope
    for part in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def render(template, scope):
    """Fill {{ input.x }} / {{ steps.name.result.y }} placeholders in strings, dicts and lists.

    A string that is exactly one placeholder keeps the value's type (a number
    stays a number); placeholders inside longer text are replaced by text.
    """
    if isinstance(template, dict):
        return {key: render(value, scope) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, scope) for value in template]
    if not isinstance(template, str):
        return template
    whole = TEMPLATE_RE.fullmatch(template.strip())
    if whole:
        return lookup(scope, whole.group(1))
    return TEMPLATE_RE.sub(lambda m: as_text(lookup(scope, m.group(1))), template)


def as_text(value):
    """A value as it reads inside text: None is empty, a list or mapping is JSON."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def condition_holds(expression, scope):
    """Evaluate a `when:` expression such as 'input.amount > 1000'."""
    path, op, literal = WHEN_RE.match(expression).groups()
    left, right = lookup(scope, path), _literal(literal)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    try:
        return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]
    except TypeError:
        return False


def retry_policy(step_spec, key="retry"):
    default = DEFAULT_RETRY if key == "retry" else DEFAULT_COMPENSATION_RETRY
    policy = {**default, **step_spec.get(key, {})}
    return (
        policy["max_attempts"],
        parse_duration(policy["backoff"]),
        parse_duration(policy["max_backoff"]),
    )
