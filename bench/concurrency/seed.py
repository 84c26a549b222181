"""Seed the throwaway database: `python seed.py BASE_URL` prints the tenant's API key.

Run with the Switchyard checkout under test on PYTHONPATH and its settings in the env
(bench/concurrency/bench.py does): a tenant, an API key and an active `openai` config
whose base URL is the provider stand-in. Only public service functions are used, so the
script works against any checkout that keeps them.
"""

import sys

import django

TENANT = "bench_tenant"


def main(base_url: str) -> None:
    django.setup()
    from llm_providers.services import llm_provider_service
    from tenants.models import Tenant
    from tenants.services import api_key_create, tenant_create

    Tenant.objects.filter(pk=TENANT).delete()  # a rerun starts from scratch (rows cascade)
    tenant = tenant_create(tenant_id=TENANT, name="Concurrency benchmark")
    _, key = api_key_create(tenant=tenant, name="bench")
    llm_provider_service.save_provider_config(
        tenant_id=tenant.pk,
        provider="openai",
        api_key="sk-bench-fake-key-0001",
        default_model="gpt-4o-mini",
        base_url=base_url,
    )
    print(key)


if __name__ == "__main__":
    main(sys.argv[1])
