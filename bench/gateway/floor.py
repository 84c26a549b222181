"""The floor: the cheapest Django view that does what every /v1 call must do.

Authenticate the tenant key (the real `resolve_api_key`), insert one usage row, answer a
fixed JSON body. No upstream call. Served under the same settings and servers as the
gateway, it tells how much of the per-request budget Django, the server model and the
database take before any provider work.
"""

import json

from django.http import HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import APIView

from llm_providers.models import UsageLog
from tenants.authentication import resolve_api_key

BODY = json.dumps(
    {
        "id": "chatcmpl-floor",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    }
).encode()


def _key(request):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, key = header.partition(" ")
    return key if scheme.lower() == "bearer" else ""


@csrf_exempt
def hello(request):
    """Django alone: no database at all."""
    return HttpResponse(BODY, content_type="application/json")


@csrf_exempt
def auth_only(request):
    try:
        api_key = resolve_api_key(_key(request))
    except Exception:
        return JsonResponse({"error": {"message": "bad key"}}, status=401)
    return HttpResponse(BODY + api_key.tenant_id.encode()[:0], content_type="application/json")


@csrf_exempt
def auth_insert(request):
    try:
        api_key = resolve_api_key(_key(request))
    except Exception:
        return JsonResponse({"error": {"message": "bad key"}}, status=401)
    json.loads(request.body)
    UsageLog.objects.create(
        tenant_id=api_key.tenant_id,
        provider="local",
        model="floor",
        endpoint="chat",
        tokens_used=10,
        prompt_tokens=9,
        completion_tokens=1,
        latency_ms=0,
        success=True,
        status_code=200,
    )
    return HttpResponse(BODY, content_type="application/json")


@csrf_exempt
def cached_auth_insert(request):
    """As auth_insert, with the gateway's in-process key cache."""
    from llm_providers.gateway.cache import authenticate_key

    try:
        api_key = authenticate_key(_key(request))
    except Exception:
        return JsonResponse({"error": {"message": "bad key"}}, status=401)
    json.loads(request.body)
    UsageLog.objects.create(
        tenant_id=api_key.tenant_id,
        provider="local",
        model="floor",
        endpoint="chat",
        tokens_used=10,
        prompt_tokens=9,
        completion_tokens=1,
        latency_ms=0,
        success=True,
        status_code=200,
    )
    return HttpResponse(BODY, content_type="application/json")


class DRFAuthInsert(APIView):
    """As auth_insert, through DRF (its authentication class, parser and renderer)."""

    def post(self, request):
        request.data  # noqa: B018 - parse like a DRF view would
        UsageLog.objects.create(
            tenant_id=request.user.tenant.pk,
            provider="local",
            model="floor",
            endpoint="chat",
            tokens_used=10,
            prompt_tokens=9,
            completion_tokens=1,
            latency_ms=0,
            success=True,
            status_code=200,
        )
        return Response(json.loads(BODY))


urlpatterns = [
    path("floor/cached-auth-insert", cached_auth_insert),
    path("floor/drf-auth-insert", DRFAuthInsert.as_view()),
    path("floor/hello", hello),
    path("floor/auth", auth_only),
    path("floor/auth-insert", auth_insert),
    path("", include("config.urls")),
]
