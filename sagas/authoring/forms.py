"""The workflow admin's forms: the document editor and the file import."""

from django import forms
from django.urls import reverse

from sagas.definitions import DefinitionError
from sagas.documents import max_file_bytes
from sagas.models import WorkflowDefinition

from .publish import parse_document
from .transfer import dump_document

NEW_WORKFLOW = """\
name: my_workflow
description: What this workflow does, in one line.
steps:
  - name: first_step
    type: action
    action: demo.noop
"""


def error_lines(exc):
    """`path: message` for every problem of a DefinitionError, in the order found."""
    return [f"{path}: {message}" for path, msgs in exc.errors.items() for message in msgs]


class WorkflowDocumentForm(forms.ModelForm):
    """One field: the whole document as YAML or JSON, validated as a whole."""

    document = forms.CharField(
        strip=False,
        widget=forms.Textarea(
            attrs={
                "class": "workflow-document",
                "rows": 28,
                "cols": 100,
                "spellcheck": "false",
                "autocapitalize": "off",
                "autocomplete": "off",
            }
        ),
        help_text="YAML or JSON. Saving validates the whole document; a changed document "
        "is published as a new version and running sagas keep theirs.",
    )

    class Meta:
        model = WorkflowDefinition
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "document" in self.fields:
            self.fields["document"].initial = (
                dump_document(self.instance.spec) if self.instance.pk else NEW_WORKFLOW
            )
            self.fields["document"].widget.attrs.update(
                {
                    "hx-post": reverse("admin:sagas_workflowdefinition_preview"),
                    "hx-trigger": "input changed delay:600ms",
                    "hx-target": "#workflow-preview",
                    "hx-swap": "innerHTML",
                }
            )
        self.parsed = None

    def clean_document(self):
        text = self.cleaned_data["document"]
        try:
            document = parse_document(text)
        except DefinitionError as exc:
            raise forms.ValidationError(error_lines(exc)) from None
        if self.instance.pk and document["name"] != self.instance.name:
            raise forms.ValidationError(
                f"name: this page edits {self.instance.name!r}; to make a workflow "
                f"named {document['name']!r}, add a new workflow"
            )
        self.parsed = document
        return text


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A YAML or JSON file with one workflow or several.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = max_file_bytes()  # the limit of loadworkflows too
        if upload.size > limit:
            raise forms.ValidationError(
                f"{upload.name}: {upload.size} bytes is more than a workflow file needs "
                f"(at most {limit})"
            )
        return upload
