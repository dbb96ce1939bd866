# The reports over a date range (customer_service/periods.py): first_assigned_at (the queue wait;
# filled from each session's first Assignment), and covering indexes for the report's three session
# families. Not atomic: on PostgreSQL each index is built CONCURRENTLY beside the one it replaces
# (the session table keeps taking writes), the old one dropped CONCURRENTLY, the new one renamed.

from django.conf import settings
from django.db import migrations, models
from django.db.models import Min, OuterRef, Subquery

from imchat.migration_ops import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres


def first_assignments(apps, schema_editor):
    """first_assigned_at of the sessions so far: their earliest Assignment (one UPDATE)."""
    Session = apps.get_model("customer_service", "ServiceSession")
    Assignment = apps.get_model("customer_service", "Assignment")
    first = (Assignment.objects.filter(session_id=OuterRef("pk")).order_by().values("session_id")
             .annotate(first=Min("created_at")).values("first"))
    Session.objects.filter(assigned_at__isnull=False).update(first_assigned_at=Subquery(first))


def replaced(name: str, index: models.Index) -> list:
    """Build `index` as <name>_new, drop the old <name>, rename: never a moment without one."""
    index.name = f"{name}_new"
    return [
        AddIndexConcurrentlyOnPostgres(model_name='servicesession', index=index),
        RemoveIndexConcurrentlyOnPostgres(model_name='servicesession', name=name),
        migrations.RenameIndex(model_name='servicesession', new_name=name, old_name=f"{name}_new"),
    ]


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('customer_service', '0010_webhook_event_choices'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='servicesession',
            name='first_assigned_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(first_assignments, migrations.RunPython.noop, atomic=True),
        *replaced('session_rated', models.Index(fields=['shop', 'rated_at'], include=('rating', 'agent'),
                                                name='session_rated')),
        *replaced('session_closed', models.Index(fields=['shop', 'closed_at'], include=('created_at', 'agent'),
                                                 name='session_closed')),
        AddIndexConcurrentlyOnPostgres(
            model_name='servicesession',
            index=models.Index(fields=['shop', 'created_at'],
                               include=('first_response_at', 'first_assigned_at', 'agent'), name='session_started'),
        ),
    ]
