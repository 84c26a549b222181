"""Rows whose cost the column cannot hold become "cost unknown" (issue 15.4).

SQLite stored whatever a cost was (an unbounded price override gave 8e14 USD), and
reading such a row back raises `decimal.InvalidOperation`: the tenant's usage endpoints
and the admin pages holding it answered 500. pricing.py now bounds every cost; this
clears the rows written before. PostgreSQL refused those writes, so it has none.
"""

from decimal import Decimal

from django.db import migrations

# cost_usd is DecimalField(max_digits=14, decimal_places=8): at most 999 999.99999999.
UNSTORABLE_COST = Decimal(1_000_000)


def null_unstorable_costs(apps, schema_editor):
    UsageLog = apps.get_model("llm_providers", "UsageLog")
    UsageLog.objects.filter(cost_usd__gte=UNSTORABLE_COST).update(cost_usd=None)


class Migration(migrations.Migration):
    dependencies = [("llm_providers", "0003_usage_daily_rollup")]

    operations = [migrations.RunPython(null_unstorable_costs, migrations.RunPython.noop)]
