"""Generated workflow documents through the validator: valid ones, and valid ones broken on purpose.

Needs Hypothesis (a dev dependency). `documents()` is the scenario: it
returns its figures, and fails on anything but a refusal with paths or an
accepted document that round-trips.
"""

import json
import time
from collections import Counter

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sagas.authoring import dump_document
from sagas.definitions import DefinitionError, load_document, validate

from . import actions  # noqa: F401  (registers the chaos.* actions the documents name)

CONTEXT = {"users": {"ann", "bob"}, "groups": {"managers", "directors"}}
ACTIONS = ["chaos.work", "chaos.undo", "chaos.ok", "chaos.flaky"]

names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.-]{0,20}\Z")
# Unicode everywhere text is free: descriptions, event types, titles.
text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
durations = st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(1, 999), st.sampled_from(["ms", "s", "m", "h", "d"])
)
json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def _common(draw, step):
    if draw(st.booleans()):
        step["description"] = draw(text)
    if draw(st.booleans()) and step["type"] in ("action", "http", "wait"):
        step["timeout"] = draw(durations)
    if draw(st.booleans()) and step["type"] in ("action", "http"):
        step["retry"] = {"max_attempts": draw(st.integers(1, 100)), "backoff": "1s"}
    if draw(st.booleans()):
        literal = json.dumps(draw(st.integers(-1000, 1000) | text), ensure_ascii=False)
        step["when"] = (
            f"input.{draw(names)} {draw(st.sampled_from(['==', '!=', '>', '<']))} {literal}"
        )
    if draw(st.booleans()):
        step["on_failure"] = draw(st.sampled_from(["compensate", "pause"]))
    return step


@st.composite
def valid_steps(draw, name):
    kind = draw(st.sampled_from(["action", "http", "wait", "approval"]))
    step = {"name": name, "type": kind}
    if kind == "action":
        step["action"] = draw(st.sampled_from(ACTIONS))
        if draw(st.booleans()):
            step["compensation"] = draw(st.sampled_from(ACTIONS))
    elif kind == "http":
        path = draw(st.from_regex(r"\A[a-z0-9/]{0,12}\Z"))
        step["request"] = {
            "method": draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])),
            "url": f"http://{draw(st.sampled_from(['127.0.0.1', 'localhost']))}/{path}",
            "body": draw(json_values),
        }
    elif kind == "wait":
        step["event"] = draw(text)
    else:
        step["approvers"] = {
            "groups": draw(
                st.lists(st.sampled_from(sorted(CONTEXT["groups"])), max_size=2, unique=True)
            ),
            "users": draw(
                st.lists(
                    st.sampled_from(sorted(CONTEXT["users"])), min_size=1, max_size=2, unique=True
                )
            ),
        }
        step["policy"] = draw(st.sampled_from(["any", "all", "quorum:1", "quorum:2"]))
        if draw(st.booleans()):
            step["due"] = draw(durations)
    return _common(draw, step)


@st.composite
def valid_documents(draw):
    step_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    document = {"name": draw(names), "steps": [draw(valid_steps(n)) for n in step_names]}
    if draw(st.booleans()):
        document["description"] = draw(text)
    if draw(st.booleans()):
        document["input_schema"] = {
            "type": "object",
            "required": draw(st.lists(names, max_size=3, unique=True)),
        }
    return document


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


@st.composite
def broken_documents(draw):
    """A valid document with one part replaced, removed or added: it may or may not still be valid."""
    document = draw(valid_documents())
    paths = [p for p in _paths(document) if p]
    path = draw(st.sampled_from(paths))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["replace", "remove", "add", "duplicate"]))
    if how == "replace":
        parent[path[-1]] = draw(json_values)
    elif how == "remove":
        del parent[path[-1]]
    elif how == "add" and isinstance(parent, dict):
        parent[draw(text)] = draw(json_values)
    elif how == "duplicate" and len(document["steps"]) and isinstance(document.get("steps"), list):
        document["steps"].append(dict(document["steps"][0]))
    return document


any_documents = (
    valid_documents() | broken_documents() | st.dictionaries(text, json_values, max_size=4)
)


def check(document, outcome):
    """Validate one document; record the outcome; fail on anything but the promised behaviour."""
    try:
        validate(document, context=CONTEXT)
    except DefinitionError as exc:
        assert exc.errors, document
        for path, messages in exc.errors.items():
            assert isinstance(path, str) and path, (document, exc.errors)
            assert messages and all(isinstance(m, str) and m for m in messages), exc.errors
        outcome["refused"] += 1
        return
    # accepted: the dump loads back to the same document, which validates again
    text_ = dump_document(document)
    loaded = load_document(text_)
    assert loaded == document, (document, text_)
    assert json.loads(json.dumps(loaded)) == document
    validate(loaded, context=CONTEXT)
    outcome["accepted"] += 1


def documents(*, examples=1500):
    """Hypothesis-generated workflow documents, valid and broken, through the validator."""
    outcome = Counter()

    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(any_documents)
    def run(document):
        check(document, outcome)

    began = time.monotonic()
    run()
    return {
        "documents": outcome["accepted"] + outcome["refused"],
        "accepted_and_round_tripped": outcome["accepted"],
        "refused_with_paths": outcome["refused"],
        "other_exceptions": 0,  # any would have failed the run
        "seconds": round(time.monotonic() - began, 1),
    }
