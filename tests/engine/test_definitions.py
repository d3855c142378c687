"""Workflow documents are validated with an error per path, and versioned on publish."""

import pytest

from sagas.definitions import DefinitionError, load_document, parse_duration, validate
from sagas.models import WorkflowDefinition

GOOD = {
    "name": "good",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "w", "type": "wait", "event": "thing.happened", "timeout": "5m"},
    ],
}


def errors_of(document):
    with pytest.raises(DefinitionError) as info:
        validate(document)
    return info.value.errors


def step(**keys):
    return {"name": "s", "type": "action", "action": "test.ok", **keys}


@pytest.mark.parametrize(
    ("document", "path", "fragment"),
    [
        ({"name": "x", "steps": []}, "steps", "at least one step"),
        ({"name": "x"}, "steps", "required"),
        ({"steps": [step()]}, "name", "required"),
        ({"name": "x", "steps": [step(), step()]}, "steps[1].name", "duplicate step name 's'"),
        (
            {"name": "x", "steps": [{"name": "s", "type": "teleport"}]},
            "steps[0].type",
            "unknown step type 'teleport'",
        ),
        (
            {"name": "x", "steps": [step(action="nope.nothing")]},
            "steps[0].action",
            "unknown action 'nope.nothing'",
        ),
        (
            {"name": "x", "steps": [step(compensation="x")]},
            "steps[0].compensation",
            "unknown action 'x'",
        ),
        (
            {"name": "x", "steps": [step(timeout="30 seconds")]},
            "steps[0].timeout",
            "malformed duration",
        ),
        ({"name": "x", "steps": [step(timeout="0s")]}, "steps[0].timeout", "longer than zero"),
        (
            {"name": "x", "steps": [step(retry={"max_attempts": 0})]},
            "steps[0].retry.max_attempts",
            "1 to 100",
        ),
        (
            {"name": "x", "steps": [step(retry={"backoff": "1h", "max_backoff": "1s"})]},
            "steps[0].retry.max_backoff",
            "not be shorter",
        ),
        ({"name": "x", "steps": [step(retry={"tries": 3})]}, "steps[0].retry.tries", "unknown key"),
        ({"name": "x", "steps": [step(colour="red")]}, "steps[0].colour", "unknown key"),
        ({"name": "x", "extra": 1, "steps": [step()]}, "extra", "unknown key"),
        ({"name": "x", "steps": [{"name": "w", "type": "wait"}]}, "steps[0].event", "required"),
        (
            {
                "name": "x",
                "steps": [
                    {"name": "h", "type": "http", "request": {"url": "https://evil.example.org/x"}}
                ],
            },
            "steps[0].request.url",
            "not in SAGAS_HTTP_ALLOWED_HOSTS",
        ),
        (
            {
                "name": "x",
                "steps": [{"name": "h", "type": "http", "request": {"url": "ftp://127.0.0.1/x"}}],
            },
            "steps[0].request.url",
            "not an http(s) URL",
        ),
        ({"name": "x", "steps": [{"name": "h", "type": "http"}]}, "steps[0].request", "required"),
        ({"name": "x", "steps": [step(when="amount is big")]}, "steps[0].when", "must read like"),
        (
            {"name": "x", "steps": [step(on_failure="explode")]},
            "steps[0].on_failure",
            "compensate or pause",
        ),
        (
            {"name": "x", "input_schema": {"type": "nonsense"}, "steps": [step()]},
            "input_schema",
            "not a valid JSON Schema",
        ),
        ({"name": "x", "steps": ["just a string"]}, "steps[0]", "must be a mapping"),
    ],
)
def test_it_refuses_each_invalid_document_with_its_path(document, path, fragment):
    errors = errors_of(document)
    assert path in errors, errors
    assert any(fragment in message for message in errors[path]), errors[path]


def test_it_reports_every_error_at_once():
    errors = errors_of(
        {
            "name": "x",
            "steps": [step(action="nope"), {"name": "w", "type": "wait"}, step(timeout="1y")],
        }
    )
    assert set(errors) >= {"steps[0].action", "steps[1].event", "steps[2].timeout", "steps[2].name"}


def test_it_accepts_a_good_document():
    assert validate(GOOD) is GOOD


def test_it_explains_yaml_that_does_not_parse():
    with pytest.raises(DefinitionError) as info:
        load_document("name: x\nsteps: [unclosed\n")
    (where,) = info.value.errors
    assert where.startswith("line ")


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("250ms", 0.25)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_publishing_a_changed_document_makes_a_new_version(publish):
    first = publish(GOOD)
    assert publish(GOOD) == first  # unchanged: no new version
    changed = {**GOOD, "description": "now with words"}
    second = publish(changed)
    assert (first.version, second.version) == (1, 2)
    assert WorkflowDefinition.objects.filter(name="good").count() == 2


def test_a_running_saga_keeps_its_version(publish, settle):
    from sagas.engine import start_saga

    publish(GOOD)
    saga, _ = start_saga(workflow="good", input={}, correlation_id="c-1")
    settle()
    publish({**GOOD, "steps": [GOOD["steps"][0]]})  # v2 has no wait step
    saga.refresh_from_db()
    assert saga.definition.version == 1
    assert saga.steps.get(name="w").status == "waiting"
    newer, _ = start_saga(workflow="good", input={})
    assert newer.definition.version == 2 and newer.steps.count() == 1


def test_loadworkflows_loads_nothing_when_one_file_is_bad(db, tmp_path):
    from django.core.management import CommandError, call_command

    good = tmp_path / "good.yaml"
    good.write_text("name: fine\nsteps:\n  - {name: a, type: action, action: test.ok}\n")
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"name": "broken", "steps": [{"name": "a", "type": "action", "action": "missing"}]}'
    )
    with pytest.raises(CommandError, match="nothing was loaded"):
        call_command("loadworkflows", str(good), str(bad))
    assert not WorkflowDefinition.objects.exists()
    call_command("loadworkflows", str(good))
    assert WorkflowDefinition.objects.get().name == "fine"
