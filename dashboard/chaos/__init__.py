"""The reliability battery: fault, race and fuzz scenarios that report figures.

`manage.py sagachaos` runs them at CI size or the README's (--large);
tests/reliability runs them at CI size and asserts on the figures (README,
"Reliability"). Nothing here is imported by a running deployment: the
battery's `chaos.*` actions are registered only where a scenario is loaded.
"""
