"""The aging report: each request keeps its saga's workflow; indexes for age and decision times."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0002_decision_audit_trigger'),
    ]

    operations = [
        migrations.AddField(
            model_name='approvalrequest',
            name='workflow',
            field=models.CharField(blank=True, db_default='', default='', max_length=100),
        ),
        # Requests opened before this migration get their saga's workflow.
        # (A subquery rather than UPDATE … FROM: SQLite, the embedded default, has no alias there.)
        migrations.RunSQL(
            "UPDATE approvals_approvalrequest SET workflow = (SELECT s.workflow FROM sagas_saga s"
            " WHERE s.id = approvals_approvalrequest.saga_id)",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name='approvalrequest',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['workflow', 'created_at', 'due_at', 'id'], name='approval_pending_age_idx'),
        ),
        migrations.AddIndex(
            model_name='approvalrequest',
            index=models.Index(condition=models.Q(('status__in', ['approved', 'rejected'])), fields=['decided_at', 'workflow', 'created_at'], name='approval_decided_idx'),
        ),
    ]
