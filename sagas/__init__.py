"""The saga engine: definitions, models, state machine, step runner and tasks."""
