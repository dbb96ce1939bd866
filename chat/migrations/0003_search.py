# Search of customer-service messages (customer_service/search.py). Not atomic: on PostgreSQL the
# indexes are built CONCURRENTLY, so a large live message table keeps taking writes meanwhile.
# The pg_trgm GIN index exists on PostgreSQL only (SQLite, the embedded default, has no pg_trgm);
# it is partial (chat_type 4), so private and group messages never pay for it.

from django.conf import settings
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

from imchat.migration_ops import AddIndexConcurrentlyOnPostgres, PostgresOnlySQL


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('chat', '0002_participant_kicked'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        TrigramExtension(),
        AddIndexConcurrentlyOnPostgres(
            model_name='message',
            index=models.Index(condition=models.Q(('chat_type', 4)), fields=['shop_id', 'created_at'],
                               name='message_service_recent'),
        ),
        PostgresOnlySQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS message_service_text_trgm ON chat_message "
            "USING gin (UPPER(msg) gin_trgm_ops) WHERE chat_type = 4",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS message_service_text_trgm",
        ),
    ]
