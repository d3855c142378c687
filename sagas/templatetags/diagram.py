"""The step diagram as a template tag, for the dashboard's pages and the workflow admin alike.

{% load diagram %}
{% step_diagram definition.spec %}                 a definition alone
{% step_diagram saga.definition.spec saga.steps %} coloured by the steps' statuses
"""

from django import template

from sagas.diagram import TEMPLATE, diagram_context

register = template.Library()


@register.inclusion_tag(TEMPLATE)
def step_diagram(spec, statuses=None, current="", links=None):
    return diagram_context(spec, statuses, current, links)
