# Kept months of the reports (customer_service/periods.py): each whole month's ReportFigures summed
# per shop and agent, so a report over a year reads about 12 rows per agent instead of 365. Two
# new, empty tables, filled by the reports (or manage.py keepreports) from the kept days: no existing
# table is rewritten or scanned (the shop table is locked only for the instant its foreign keys are
# added).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('customer_service', '0013_report_rollup'),
    ]

    operations = [
        migrations.CreateModel(
            name='ReportMonth',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('scope', models.BigIntegerField()),
                ('zone', models.CharField(max_length=64)),
                ('month', models.DateField()),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('scope', 'zone', 'month'), name='report_month_unique')],
            },
        ),
        migrations.CreateModel(
            name='ReportMonthFigures',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sessions_started', models.IntegerField(default=0)),
                ('sessions_answered', models.IntegerField(default=0)),
                ('sessions_closed', models.IntegerField(default=0)),
                ('ratings', models.IntegerField(default=0)),
                ('rating_sum', models.IntegerField(default=0)),
                ('messages_customer', models.IntegerField(default=0)),
                ('messages_agent', models.IntegerField(default=0)),
                ('first_response_p50', models.FloatField(null=True)),
                ('first_response_p90', models.FloatField(null=True)),
                ('resolution_p50', models.FloatField(null=True)),
                ('resolution_p90', models.FloatField(null=True)),
                ('queue_wait_p50', models.FloatField(null=True)),
                ('queue_wait_p90', models.FloatField(null=True)),
                ('first_response_hist', models.TextField(default='')),
                ('resolution_hist', models.TextField(default='')),
                ('queue_wait_hist', models.TextField(default='')),
                ('zone', models.CharField(max_length=64)),
                ('month', models.DateField()),
                ('agent_key', models.BigIntegerField()),
                ('shop', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='customer_service.shop')),
            ],
            options={
                'indexes': [models.Index(fields=['zone', 'month'], name='report_month_figures_month')],
                'constraints': [models.UniqueConstraint(fields=('shop', 'zone', 'month', 'agent_key'), name='report_month_figures_unique')],
            },
        ),
    ]
