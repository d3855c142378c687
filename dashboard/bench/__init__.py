"""Helpers of `manage.py sagabench` (dashboard/management/commands/sagabench.py), README "Performance"."""
