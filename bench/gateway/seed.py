"""Benchmark fixtures: `python -m bench.gateway.seed setup|count` (settings from the env)."""

import json
import sys

import django


def setup(provider: str, base_url: str) -> None:
    from llm_providers.services import llm_provider_service
    from tenants.models import Tenant
    from tenants.services import api_key_create, tenant_create

    # A rerun against the same database starts from scratch (rows cascade).
    Tenant.objects.filter(pk="bench_tenant").delete()
    tenant = tenant_create(tenant_id="bench_tenant", name="Benchmark")
    _, key = api_key_create(tenant=tenant, name="bench")
    llm_provider_service.save_provider_config(
        tenant_id=tenant.pk,
        provider=provider,
        api_key="sk-bench-fake-key-0001" if provider != "local" else "",
        default_model="gpt-4o-mini",
        base_url=base_url,
    )
    print(key)


def count() -> None:
    from llm_providers.models import UsageLog

    rows = UsageLog.objects.for_tenant("bench_tenant")
    print(
        json.dumps(
            {
                "success": rows.filter(success=True).count(),
                "failed": rows.filter(success=False).count(),
                # A client that leaves (wrk's time is up) cancels its call: a failed row
                # marked client_disconnected, whose upstream may have answered already.
                "client_left": rows.filter(
                    success=False, metadata__client_disconnected=True
                ).count(),
                "endpoints": sorted(set(rows.values_list("endpoint", flat=True))),
            }
        )
    )


if __name__ == "__main__":
    django.setup()
    if sys.argv[1] == "setup":
        setup(sys.argv[2], sys.argv[3])
    else:
        count()
