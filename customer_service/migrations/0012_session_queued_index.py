# The queue lengths of all shops for /metrics, from the queued sessions only (built CONCURRENTLY on
# PostgreSQL: the sessions table keeps taking writes meanwhile).

from django.db import migrations, models

from imchat.migration_ops import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('customer_service', '0011_reports'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='servicesession',
            index=models.Index(condition=models.Q(('state', 'queued')), fields=['shop'], name='session_queued'),
        ),
    ]
