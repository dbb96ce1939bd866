# The reports over a date range (customer_service/periods.py) count a shop's messages per day and
# agent from the (shop_id, created_at) index alone: it now carries sent_as and sender. Not atomic: on
# PostgreSQL the new index is built CONCURRENTLY beside the old one (the message table keeps taking
# writes, the search keeps its index), the old one dropped CONCURRENTLY, the new one renamed.

from django.conf import settings
from django.db import migrations, models

from imchat.migration_ops import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('chat', '0005_message_cards'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='message',
            index=models.Index(condition=models.Q(('chat_type', 4)), fields=['shop_id', 'created_at'],
                               include=('sent_as', 'sender'), name='message_service_recent_new'),
        ),
        RemoveIndexConcurrentlyOnPostgres(
            model_name='message',
            name='message_service_recent',
        ),
        migrations.RenameIndex(
            model_name='message',
            new_name='message_service_recent',
            old_name='message_service_recent_new',
        ),
    ]
