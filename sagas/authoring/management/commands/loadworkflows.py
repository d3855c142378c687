"""manage.py loadworkflows FILE...: publish workflow documents (YAML or JSON)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from sagas.authoring import (
    check_document,
    documents_in,
    in_dependency_order,
    publish_workflow,
    validation_context,
    with_batch,
)
from sagas.definitions import DefinitionError


class Command(BaseCommand):
    help = "Validate and publish workflow documents; a changed document becomes a new version."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")

    def handle(self, *args, files, **options):
        documents = []
        failed = False
        for name in files:
            path = Path(name)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"{name}: cannot read: {exc.strerror}") from exc
            try:
                for document in documents_in(text):
                    documents.append((name, document))
            except DefinitionError as exc:
                failed = True
                self._report(name, exc)
        context = with_batch(validation_context(), [d for _, d in documents])
        for name, document in documents:
            try:
                check_document(document, context=context)
            except DefinitionError as exc:
                failed = True
                self._report(name, exc)
        if failed:
            raise CommandError("nothing was loaded: fix the errors above")
        with transaction.atomic():  # all files or none
            order = in_dependency_order([d for _, d in documents])
            files = {id(d): name for name, d in documents}
            for document in order:
                name = files[id(document)]
                definition, created = publish_workflow(document)
                verb = "published" if created else "unchanged"
                self.stdout.write(f"{name}: {definition.name} v{definition.version} {verb}")

    def _report(self, name, exc):
        for path, messages in exc.errors.items():
            for message in messages:
                self.stderr.write(f"{name}: {path}: {message}")
