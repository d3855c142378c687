"""The registry of step kinds: a kind is a module that registers itself, without editing the engine.

The built-in kinds are `action`, `http` and `wait` (the modules beside this
one, imported when the app loads); other apps register theirs the same way
(approvals/kind.py).
"""

from .base import StepKind, TimedOut

__all__ = ["StepKind", "TimedOut", "all_kinds", "get", "names", "register"]

_kinds = {}


def register(kind):
    if not kind.name:
        raise ValueError("a step kind needs a name")
    _kinds[kind.name] = kind
    return kind


def get(name):
    return _kinds.get(name) if isinstance(name, str) else None


def names():
    return list(_kinds)


def all_kinds():
    return dict(_kinds)
