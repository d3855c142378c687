"""Publishing refuses a malformed parallel step, each problem at its path."""

import pytest

from sagas.definitions import DefinitionError, validate


def act(name):
    return {"name": name, "type": "action", "action": "test.ok"}


def parallel(name="p", **keys):
    return {"name": name, "type": "parallel", **keys}


def errors_of(steps):
    with pytest.raises(DefinitionError) as refused:
        validate({"name": "x", "steps": steps})
    return refused.value.errors


def nest(levels):
    """`levels` parallel steps, each the only step of the one around it's branch."""
    inner = [act("leaf")]
    for level in range(levels):
        inner = [parallel(f"p{level}", branches={"only": inner})]
    return inner


@pytest.mark.parametrize(
    ("steps", "path", "words"),
    [
        (
            [act("a"), parallel(branches={"one": [act("a")]})],
            "steps[1].branches.one[0].name",
            "duplicate step name 'a' (also steps[0])",
        ),
        (
            [parallel(branches={"one": [act("b")], "two": [act("b")]})],
            "steps[0].branches.two[0].name",
            "duplicate step name 'b' (also steps[0].branches.one[0])",
        ),
        (
            [parallel(branches={"one": [act("b")]}), act("b")],
            "steps[1].name",
            "duplicate step name 'b'",
        ),
        ([parallel(branches={"one": []})], "steps[0].branches.one", "an empty branch"),
        ([parallel(branches={})], "steps[0].branches", "mapping of branch names"),
        ([parallel(branches={"1st": [act("b")]})], "steps[0].branches.1st", "a branch name"),
        ([parallel()], "steps[0]", "either branches or for_each"),
        (
            [parallel(branches={"one": [act("b")]}, for_each="input.x", steps=[act("c")])],
            "steps[0]",
            "not both",
        ),
        (
            [parallel(for_each="input..lines", steps=[act("c")])],
            "steps[0].for_each",
            "a path into the input",
        ),
        (
            [parallel(for_each="secrets.token", steps=[act("c")])],
            "steps[0].for_each",
            "a path into the input",
        ),
        (
            [parallel(for_each="steps.later.result", steps=[act("c")]), act("later")],
            "steps[0].for_each",
            "reads step 'later', which is not earlier",
        ),
        ([parallel(for_each="input.lines")], "steps[0].steps", "required"),
        ([parallel(for_each="input.lines", steps=[])], "steps[0].steps", "required"),
        (
            [parallel(for_each="input.lines", steps=[act("c")], max_concurrency=0)],
            "steps[0].max_concurrency",
            "at least 1",
        ),
        (
            [parallel(for_each="input.lines", steps=[act("c")], max_concurrency="2")],
            "steps[0].max_concurrency",
            "whole number",
        ),
        (
            [parallel(for_each="input.lines", steps=[act("c")], max_concurrency=True)],
            "steps[0].max_concurrency",
            "whole number",
        ),
        (
            [parallel(branches={"one": [{"name": "w", "type": "teleport"}]})],
            "steps[0].branches.one[0].type",
            "unknown step type",
        ),
        (
            [parallel(for_each="input.lines", steps=[{**act("c"), "action": "no.such"}])],
            "steps[0].steps[0].action",
            "unknown action",
        ),
        (
            nest(4),
            "steps[0].branches.only[0].branches.only[0].branches.only[0]",
            "more than 3 levels",
        ),
    ],
)
def test_publishing_refuses_a_malformed_parallel_step_with_its_path(steps, path, words):
    errors = errors_of(steps)
    assert any(words in message for message in errors.get(path, [])), errors


def test_three_levels_and_well_formed_branches_are_accepted():
    validate({"name": "x", "steps": nest(3)})
    validate(
        {
            "name": "x",
            "steps": [
                act("fetch"),
                parallel(
                    "sign_off",
                    branches={"legal": [act("l1")], "finance": [act("f1"), act("f2")]},
                ),
                parallel(
                    "lines",
                    for_each="steps.fetch.result.items",
                    max_concurrency=3,
                    steps=[act("line")],
                ),
                parallel("more", for_each="input.order.lines", steps=[act("other")]),
            ],
        }
    )
