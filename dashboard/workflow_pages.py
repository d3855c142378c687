"""The workflow pages: the published workflows with their counts, and starting a saga of one."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from sagas import engine
from sagas.access import is_operator

from . import selectors
from .forms import StartSagaForm
from .views import HtmxHttpRequest, operators_only, problem, signed_in


@require_GET
@signed_in
def workflow_list(request: HtmxHttpRequest) -> HttpResponse:
    context = {
        "workflows": selectors.workflows_with_counts(),
        "operator": is_operator(request.user),
    }
    return render(request, "dashboard/workflows.html", context)


@require_http_methods(["GET", "POST"])
@operators_only
def workflow_start(request: HtmxHttpRequest, name: str) -> HttpResponse:
    try:
        definition = engine.published_definition(name)
    except engine.SagaError as exc:
        return problem(request, exc.message, status=exc.status)
    schema = definition.spec.get("input_schema")
    form = StartSagaForm(request.POST or None, schema=schema)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                saga, created = engine.start_saga(
                    workflow=definition.name,
                    input=form.cleaned_data["input"],
                    idempotency_key=form.cleaned_data["idempotency_key"] or None,
                    correlation_id=form.cleaned_data["correlation_id"],
                    user=request.user,
                    actor_label="dashboard",
                )
            except engine.InvalidInput as exc:
                form.add_input_errors(exc.fields or {"input": [exc.message]})
            except engine.SagaError as exc:
                form.add_error(None, exc.message)
                status = exc.status
            else:
                if created:
                    messages.success(
                        request, f"Saga started: {definition.name} v{definition.version}."
                    )
                else:
                    messages.info(
                        request, "A saga with this idempotency key exists already; here it is."
                    )
                return redirect("saga_detail", saga_id=saga.pk)
    context = {"definition": definition, "form": form, "schema": schema}
    return render(request, "dashboard/workflow_start.html", context, status=status)
