"""The workflow admin: edit and publish, versions, archive, diff, import/export, the catalogue.

Every write goes through the publishing service (sagas/authoring/publish.py),
as the API and `loadworkflows` do (README: Workflow authoring).
"""

from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from sagas.definitions import DefinitionError
from sagas.engine import Conflict, NotFound
from sagas.models import Saga, WorkflowAudit, WorkflowDefinition
from sagas.states import FINISHED_SAGA_STATES

from .catalogue import action_catalogue
from .diff import diff_versions
from .forms import ImportForm, WorkflowDocumentForm, error_lines
from .publish import archive_workflow, can_publish, parse_document, publish_workflow
from .selectors import is_latest, latest_versions, running_saga_counts, versions_of
from .transfer import dump_document, dump_documents, import_workflows


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(admin.ModelAdmin):
    form = WorkflowDocumentForm
    change_form_template = "admin/sagas/workflowdefinition/change_form.html"
    change_list_template = "admin/sagas/workflowdefinition/change_list.html"
    list_display = ("name", "version", "status", "running_sagas", "created_by", "created_at")
    list_filter = ("status", "name")
    search_fields = ("name", "description")
    readonly_fields = (
        "name",
        "version",
        "status",
        "description",
        "running_sagas",
        "created_by",
        "created_at",
    )
    actions = ["archive"]

    # Publishing is the only way a definition changes: a new version, never an edit in place.
    def has_publish_permission(self, request):
        return can_publish(request.user)

    def has_add_permission(self, request):
        return can_publish(request.user)

    def has_change_permission(self, request, obj=None):
        if not can_publish(request.user):
            return False
        if obj is None:
            return True
        # Only the newest published version is edited; older ones are history.
        return obj.status == WorkflowDefinition.Status.PUBLISHED and is_latest(obj)

    def has_delete_permission(self, request, obj=None):
        return False  # versions are history, and sagas point at them

    def get_queryset(self, request):
        running = (
            Saga.objects.filter(definition=OuterRef("pk"))
            .exclude(state__in=FINISHED_SAGA_STATES)
            .order_by()
            .values("definition")
            .annotate(n=Count("*"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .select_related("created_by")
            .annotate(running=Coalesce(Subquery(running, output_field=IntegerField()), 0))
        )

    @admin.display(description="running sagas", ordering="running")
    def running_sagas(self, obj):
        return getattr(obj, "running", None) or running_saga_counts([obj.pk]).get(obj.pk, 0)

    @admin.display(description="document")
    def document(self, obj):
        return format_html(
            '<pre class="workflow-document-readonly">{}</pre>', dump_document(obj.spec)
        )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["document"]})]
        return [
            (None, {"fields": [("name", "version", "status", "running_sagas", "created_by")]}),
            ("Document", {"fields": ["document"]}),
        ]

    def render_change_form(self, request, context, *args, **kwargs):
        # The admin's note counts fields with errors ("Please correct the error
        # below." for one document with five errors); count the errors themselves.
        if context.get("errors"):
            context["errors"] = [message for field in context["errors"] for message in field]
        return super().render_change_form(request, context, *args, **kwargs)

    # -- saving: the form's document is published through the one publishing service --

    def save_form(self, request, form, change):
        definition, created = publish_workflow(form.parsed, user=request.user)
        definition.published_now = created
        return definition

    def save_model(self, request, obj, form, change):
        """Nothing to do: save_form published the document."""

    def save_related(self, request, form, formsets, change):
        """A definition has no related objects to save."""

    def construct_change_message(self, request, form, formsets, add=False):
        return [{"added": {}}] if add else [{"changed": {"fields": ["document"]}}]

    def _after_publish(self, request, obj):
        if obj.published_now:
            self.message_user(
                request, f"Published {obj.name} version {obj.version}.", messages.SUCCESS
            )
        else:
            self.message_user(
                request,
                f"The document is the same as {obj.name} version {obj.version}: "
                "no new version was published.",
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:sagas_workflowdefinition_change", args=[obj.pk]))

    def response_add(self, request, obj, post_url_continue=None):
        return self._after_publish(request, obj)

    def response_change(self, request, obj):
        return self._after_publish(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if obj is not None and self.has_view_or_change_permission(request, obj):
            versions = versions_of(obj.name)
            stale_edit = (
                request.method == "POST"
                and "document" in request.POST
                and can_publish(request.user)
                and versions[0].pk != obj.pk
            )
            if stale_edit:
                # Someone published after this page was opened: say so instead of a bare 403.
                self.message_user(
                    request,
                    f"{obj.name} version {versions[0].version} was published after you opened "
                    f"version {obj.version}; your edit was not saved. This is the newest version.",
                    messages.ERROR,
                )
                return HttpResponseRedirect(
                    reverse("admin:sagas_workflowdefinition_change", args=[versions[0].pk])
                )
            context.update(
                diagram_spec=obj.spec,
                versions=versions,
                is_latest=versions[0].pk == obj.pk,
                latest=versions[0],
                can_publish=can_publish(request.user),
                show_save_and_add_another=False,
                audit=WorkflowAudit.objects.filter(workflow=obj.name).select_related("actor")[:20],
            )
        return super().change_view(request, object_id, form_url, context)

    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(
            request,
            form_url,
            {"diagram_spec": None, "show_save_and_add_another": False, **(extra_context or {})},
        )

    # -- archive ----------------------------------------------------------------

    @admin.action(
        description="Archive: start no new sagas (running ones finish)",
        permissions=["publish"],
        location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM],
    )
    def archive(self, request, queryset):
        for name in sorted(set(queryset.values_list("name", flat=True))):
            try:
                latest = archive_workflow(name=name, user=request.user)
            except (Conflict, NotFound) as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(
                    request,
                    f"Archived {name} (up to version {latest.version}): it starts no new sagas.",
                    messages.SUCCESS,
                )

    # -- extra pages --------------------------------------------------------------

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(func)

        return [
            path(
                "catalogue/", view(self.catalogue_view), name="sagas_workflowdefinition_catalogue"
            ),
            path("import/", view(self.import_view), name="sagas_workflowdefinition_import"),
            path("export/", view(self.export_view), name="sagas_workflowdefinition_export"),
            path("preview/", view(self.preview_view), name="sagas_workflowdefinition_preview"),
            path("diff/<str:name>/", view(self.diff_view), name="sagas_workflowdefinition_diff"),
            *super().get_urls(),
        ]

    def _page(self, request, template, title, *, status=200, **context):
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "has_view_permission": self.has_view_permission(request),
                **context,
            },
            status=status,
        )

    def _require_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied

    def catalogue_view(self, request):
        self._require_view(request)
        return self._page(
            request,
            "admin/sagas/workflowdefinition/catalogue.html",
            "Actions and step kinds",
            **action_catalogue(),
        )

    def diff_view(self, request, name):
        self._require_view(request)
        versions = versions_of(name)
        if not versions:
            raise Http404(f"no workflow {name!r}")
        numbers = [v.version for v in versions]
        try:
            new = int(request.GET.get("new") or numbers[0])
            old = int(request.GET.get("old") or (numbers[1] if len(numbers) > 1 else new))
        except ValueError:
            return HttpResponse("old and new must be version numbers", status=400)
        try:
            lines = diff_versions(name=name, old=old, new=new)
        except NotFound as exc:
            raise Http404(exc.message) from None
        return self._page(
            request,
            "admin/sagas/workflowdefinition/diff.html",
            f"{name}: version {old} → version {new}",
            name=name,
            versions=versions,
            old=old,
            new=new,
            lines=lines,
        )

    def import_view(self, request):
        if not self.has_publish_permission(request):
            raise PermissionDenied
        errors = []
        status = 200
        if request.method == "POST":
            form = ImportForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    text = upload.read().decode("utf-8")
                    results = import_workflows(text, user=request.user)
                except UnicodeDecodeError:
                    errors = [f"{upload.name}: not UTF-8 text"]
                except DefinitionError as exc:
                    errors = [f"{upload.name}: {line}" for line in error_lines(exc)]
                else:
                    for definition, created in results:
                        label = f"{definition.name} v{definition.version}"
                        self.message_user(
                            request,
                            f"Published {label}"
                            if created
                            else f"Unchanged: {label}, no new version",
                        )
                    return HttpResponseRedirect(
                        reverse("admin:sagas_workflowdefinition_changelist")
                    )
            status = 400
        else:
            form = ImportForm()
        return self._page(
            request,
            "admin/sagas/workflowdefinition/import.html",
            "Import workflows",
            form=form,
            import_errors=errors,
            status=status,
        )

    def export_view(self, request):
        """Download the current workflows (or one, by `name` and optional `version`) as YAML."""
        self._require_view(request)
        name = request.GET.get("name")
        if name:
            definitions = WorkflowDefinition.objects.filter(name=name).order_by("-version")
            if request.GET.get("version"):
                try:
                    definitions = definitions.filter(version=int(request.GET["version"]))
                except ValueError:
                    return HttpResponse("version must be a number", status=400)
            definition = definitions.first()
            if definition is None:
                raise Http404(f"no workflow {name!r} with that version")
            body = dump_document(definition.spec)
            filename = f"{definition.name}.v{definition.version}.yaml"
        else:
            body = dump_documents(d.spec for d in latest_versions())
            filename = "workflows.yaml"
        response = HttpResponse(body, content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def preview_view(self, request):
        """The diagram of the document being edited, or its errors by path (an HTMX fragment)."""
        self._require_view(request)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        text = request.POST.get("document", "")
        try:
            document = parse_document(text)
        except DefinitionError as exc:
            return TemplateResponse(
                request,
                "admin/sagas/workflowdefinition/preview.html",
                {"preview_errors": error_lines(exc)},
            )
        return TemplateResponse(
            request,
            "admin/sagas/workflowdefinition/preview.html",
            {"diagram_spec": document},
        )


@admin.register(WorkflowAudit)
class WorkflowAuditAdmin(admin.ModelAdmin):
    list_display = ("at", "workflow", "version", "action", "who")
    list_filter = ("action", "workflow")
    search_fields = ("workflow", "actor__username", "actor_label")
    fields = ("at", "workflow", "version", "action", "who", "document_yaml")
    readonly_fields = fields

    @admin.display(description="document")
    def document_yaml(self, obj):
        return format_html(
            '<pre class="workflow-document-readonly">{}</pre>',
            dump_document(obj.document),
        )

    @admin.display(description="who")
    def who(self, obj):
        return obj.who

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
