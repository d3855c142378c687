"""manage.py dumpworkflows [NAME...]: print workflows as YAML that loadworkflows reads back unchanged."""

from django.core.management.base import BaseCommand, CommandError

from sagas.authoring import dump_document, dump_documents, latest_versions
from sagas.models import WorkflowDefinition


class Command(BaseCommand):
    help = (
        "Print the newest version of each workflow (or of the named ones) as YAML; "
        "`dumpworkflows > f.yaml; loadworkflows f.yaml` publishes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME")
        parser.add_argument(
            "--workflow-version",
            dest="workflow_version",
            type=int,
            help="this version (one NAME only)",
        )

    def handle(self, *args, names, workflow_version, **options):
        if workflow_version is not None and len(names) != 1:
            raise CommandError("--workflow-version needs exactly one NAME")
        if not names:
            # Archived workflows are left out: loading them would publish them again.
            specs = [d.spec for d in latest_versions()]
            self.stdout.write(dump_documents(specs), ending="")
            return
        definitions = []
        for name in names:
            versions = WorkflowDefinition.objects.filter(name=name).order_by("-version")
            if workflow_version is not None:
                versions = versions.filter(version=workflow_version)
            definition = versions.first()
            if definition is None:
                which = f" version {workflow_version}" if workflow_version is not None else ""
                raise CommandError(f"no workflow {name!r}{which}")
            if definition.status == WorkflowDefinition.Status.ARCHIVED:
                self.stderr.write(
                    f"{name} v{definition.version} is archived: loading it publishes it again"
                )
            definitions.append(definition)
        if len(definitions) == 1:
            self.stdout.write(dump_document(definitions[0].spec), ending="")
        else:
            self.stdout.write(dump_documents(d.spec for d in definitions), ending="")
