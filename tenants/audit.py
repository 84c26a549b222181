"""The audit log's one write path: `record(...)`, called by the services (SPEC §15).

Services call it inside the transaction of the change they audit, so the event and the
change commit (or roll back) together. The actor, ip and request come from
`tenants.context` unless given. Secrets never reach an event: a field named in `secrets`
is recorded as "[changed]" whatever its values.
"""

from django.db import models, transaction

from .context import SYSTEM_ACTOR, current
from .models import AuditEvent

CHANGED = "[changed]"


def record(
    action: str,
    *,
    tenant=None,
    target_type: str,
    target_id="",
    changes: dict | None = None,
    actor: str | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one event; call it inside the change's own transaction (checked)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"audit.record({action!r}) must run in the transaction of the change.")
    ctx = current()
    event = AuditEvent(
        # A row of SWITCHYARD_TENANT_MODEL (a host's own model, not only tenants.Tenant).
        tenant_id=tenant.pk if isinstance(tenant, models.Model) else tenant,
        actor=actor or (ctx.resolved_actor() if ctx else SYSTEM_ACTOR),
        action=action,
        target_type=target_type,
        target_id=str(target_id or ""),
        changes=changes or {},
        ip=ip or (ctx.ip if ctx else None),
    )
    event.save()
    return event


def diff(before: dict, after: dict, *, secrets=()) -> dict:
    """{field: [before, after]} for the fields that differ; secrets as "[changed]"."""
    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        changes[name] = CHANGED if name in secrets else [old, new]
    return changes


def created(values: dict, *, secrets=()) -> dict:
    """A creation as changes: every set field from null; secrets as "[changed]"."""
    return diff({}, {k: v for k, v in values.items() if v not in (None, "", {})}, secrets=secrets)


def deleted(values: dict, *, secrets=()) -> dict:
    """A deletion as changes: every set field to null; secrets as "[changed]"."""
    return diff({k: v for k, v in values.items() if v not in (None, "", {})}, {}, secrets=secrets)
