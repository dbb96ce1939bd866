# Message.conversation loses its own index: message_unique_seq (conversation, seq) leads with the
# same column and serves every lookup by conversation. Not atomic: on PostgreSQL the index is dropped
# CONCURRENTLY (the message table keeps taking writes); a plain DROP INDEX elsewhere.

import django.db.models.deletion
from django.db import migrations, models

INDEX = "chat_message_conversation_id_a1207bf4"  # the name Django gave the foreign key's index


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_index(apps, schema_editor):
    schema_editor.execute(f'DROP INDEX{_concurrently(schema_editor)} IF EXISTS "{INDEX}"')


def create_index(apps, schema_editor):
    schema_editor.execute(
        f'CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS "{INDEX}" ON "chat_message" ("conversation_id")')


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('chat', '0006_reports'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='message',
                    name='conversation',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name='messages', to='chat.conversation'),
                ),
            ],
            database_operations=[migrations.RunPython(drop_index, create_index)],
        ),
    ]
