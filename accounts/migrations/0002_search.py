# Customer-name search on the service desk (customer_service/search.py): pg_trgm GIN indexes on the
# names, PostgreSQL only (SQLite, the embedded default, has no pg_trgm), built CONCURRENTLY.

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

from imchat.migration_ops import PostgresOnlySQL


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('accounts', '0001_initial'),
    ]

    operations = [
        TrigramExtension(),
        PostgresOnlySQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS user_nickname_trgm ON accounts_user "
            "USING gin (UPPER(nickname) gin_trgm_ops)",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS user_nickname_trgm",
        ),
        PostgresOnlySQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS user_username_trgm ON accounts_user "
            "USING gin (UPPER(username) gin_trgm_ops)",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS user_username_trgm",
        ),
    ]
