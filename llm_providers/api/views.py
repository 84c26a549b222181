"""Thin views: validate with a serializer, call a service or selector, serialize the result."""

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from tenants.api.schema import error_responses
from tenants.api.views import TenantAPIView, TenantViewSet

from ..configs.services import UNSET, llm_provider_service
from ..configs.testing import DEFAULT_TEST_PROMPT, provider_config_test
from ..models import Endpoint, Provider, ProviderConfig, UsageLog
from ..usage import selectors
from .filters import UsageLogFilterSet
from .serializers import (
    ConnectionTestResultSerializer,
    ConnectionTestSerializer,
    ProviderConfigCreateSerializer,
    ProviderConfigSerializer,
    ProviderConfigUpdateSerializer,
    ProviderStatusSerializer,
    UsageLogSerializer,
    UsageStatsQuerySerializer,
    UsageStatsSerializer,
    restore_redacted,
)
from .throttles import LimitRefused, LLMTestThrottle

PROVIDER_TAG = ["Provider configs"]
USAGE_TAG = ["Usage"]


@extend_schema(
    tags=PROVIDER_TAG,
    summary="Create a provider config",
    description="Creates a config for the caller's tenant and, unless `activate` is false, "
    "makes it the active one. The key is stored encrypted and only its last four characters "
    "are ever returned. `base_url` must not point at link-local/metadata addresses, nor at "
    "private or loopback ones outside LLM_BASE_URL_ALLOWLIST.",
    request=ProviderConfigCreateSerializer,
    responses={201: ProviderConfigSerializer, **error_responses(400, 413, 415)},
)
class ProviderConfigureView(TenantAPIView):
    queryset = ProviderConfig.objects.all()
    serializer_class = ProviderConfigCreateSerializer

    def post(self, request):
        serializer = ProviderConfigCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config_id = llm_provider_service.save_provider_config(
            tenant_id=self.get_tenant().pk, **serializer.validated_data
        )
        config = self.get_queryset().get(pk=config_id)
        location = reverse("llm-provider-config-detail", kwargs={"pk": config.pk})
        return Response(
            ProviderConfigSerializer(config).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


@extend_schema(
    tags=PROVIDER_TAG,
    summary="Is an LLM available for this tenant?",
    description="Which source a call would use (the active config, the environment "
    "fallback, or none), whether it is usable (`key_status` is `undecryptable` when the "
    "stored key cannot be decrypted with FIELD_ENCRYPTION_KEY), and the latest test or "
    "validation outcome.",
    responses={200: ProviderStatusSerializer, **error_responses()},
)
class ProviderStatusView(TenantAPIView):
    queryset = ProviderConfig.objects.all()
    serializer_class = ProviderStatusSerializer

    def get(self, request):
        return Response(
            ProviderStatusSerializer(selectors.provider_status_for_tenant(self.get_tenant())).data
        )


class ProviderConfigViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    """The tenant's configs; another tenant's ids are simply not found."""

    queryset = ProviderConfig.objects.all()
    serializer_class = ProviderConfigSerializer
    filter_backends = []
    http_method_names = ["get", "patch", "delete", "post", "head", "options"]

    @extend_schema(
        tags=PROVIDER_TAG,
        summary="List the tenant's provider configs",
        responses={200: ProviderConfigSerializer(many=True), **error_responses(404)},
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        tags=PROVIDER_TAG,
        summary="One provider config",
        responses={200: ProviderConfigSerializer, **error_responses(404)},
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        tags=PROVIDER_TAG,
        summary="Change a provider config",
        description="Only the fields given change. A blank, null or absent `api_key` keeps "
        "the stored key; a new one replaces it.",
        request=ProviderConfigUpdateSerializer,
        responses={200: ProviderConfigSerializer, **error_responses(400, 404, 413, 415)},
    )
    def partial_update(self, request, *args, **kwargs):
        config = self.get_object()
        serializer = ProviderConfigUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        if not changes.get("api_key"):
            changes["api_key"] = UNSET
        if "metadata" in changes:
            changes["metadata"] = restore_redacted(changes["metadata"], config.metadata)
        config = llm_provider_service.update_provider_config(config=config, **changes)
        return Response(ProviderConfigSerializer(config).data)

    @extend_schema(
        tags=PROVIDER_TAG,
        summary="Delete a provider config",
        description="Usage rows keep their history (their config reference becomes null).",
        responses={204: None, **error_responses(404)},
    )
    def destroy(self, request, *args, **kwargs):
        llm_provider_service.delete_provider_config(config=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=PROVIDER_TAG,
        summary="Make a config the active one",
        description="Atomically deactivates the tenant's other active config.",
        request=None,
        responses={200: ProviderConfigSerializer, **error_responses(404, 409)},
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        config = self.get_object()
        config = llm_provider_service.activate(tenant_id=self.get_tenant().pk, config_id=config.pk)
        return Response(ProviderConfigSerializer(config).data)


@extend_schema(
    tags=PROVIDER_TAG,
    summary="Test a provider with a real, minimal completion",
    description="Sends one tiny completion through the active config (or `config_id`), logs "
    "it as `endpoint=test` and stores the outcome on the config. Answers 200 whether or not "
    "the provider answered: `success` and the normalised `error` say how it went. One "
    "attempt (no retries), at most 30 s. Throttled "
    f"per tenant (LLM_TEST_THROTTLE_RATE). Default prompt: {DEFAULT_TEST_PROMPT!r}.",
    request=ConnectionTestSerializer,
    responses={200: ConnectionTestResultSerializer, **error_responses(400, 404, 413, 415, 429)},
)
class ConnectionTestView(TenantAPIView):
    queryset = ProviderConfig.objects.all()
    serializer_class = ConnectionTestSerializer
    throttle_classes = [LLMTestThrottle]

    def post(self, request):
        serializer = ConnectionTestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = None
        if serializer.validated_data.get("config_id"):
            config = get_object_or_404(
                self.get_queryset(), pk=serializer.validated_data["config_id"]
            )
        outcome = provider_config_test(
            tenant=self.get_tenant(),
            config=config,
            prompt=serializer.validated_data.get("prompt") or DEFAULT_TEST_PROMPT,
        )
        if outcome.refused is not None:
            raise LimitRefused(outcome.refused)
        return Response(outcome.as_dict())


USAGE_FILTER_PARAMETERS = [
    OpenApiParameter(
        "from", str, description="Start, inclusive: ISO 8601 date or date-time (UTC if naive)."
    ),
    OpenApiParameter(
        "to", str, description="End, exclusive: ISO 8601 date-time; a bare date includes that day."
    ),
]


USAGE_STATS_FILTERS = ("provider", "model", "endpoint", "success", "error_type", "provider_config")


@extend_schema(
    tags=USAGE_TAG,
    summary="Usage totals and breakdowns",
    description="Totals over the window (default: the last 30 days) and, with `group_by`, "
    "one entry per provider, model, endpoint or UTC day. Computed in the database.",
    parameters=[
        *USAGE_FILTER_PARAMETERS,
        OpenApiParameter("provider", str, enum=Provider.values),
        OpenApiParameter("model", str),
        OpenApiParameter("endpoint", str, enum=Endpoint.values),
        OpenApiParameter("success", bool),
        OpenApiParameter("error_type", str),
        OpenApiParameter("provider_config", OpenApiTypes.UUID),
        OpenApiParameter("group_by", str, enum=list(selectors.STATS_GROUPS)),
    ],
    responses={200: UsageStatsSerializer, **error_responses(400)},
)
class UsageStatsView(TenantAPIView):
    queryset = UsageLog.objects.all()
    filterset_class = UsageLogFilterSet
    serializer_class = UsageStatsSerializer
    pagination_class = None

    def get(self, request):
        query = UsageStatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        group_by = query.validated_data.get("group_by")
        filterset = UsageLogFilterSet(request.query_params, queryset=self.get_queryset())
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        cleaned = filterset.form.cleaned_data
        # As django-filter does: an empty value is no filter.
        filters = {
            filterset.filters[name].field_name: cleaned[name]
            for name in USAGE_STATS_FILTERS
            if cleaned.get(name) not in (None, "")
        }
        try:
            stats = selectors.usage_stats_for_window(
                self.get_tenant(),
                start=cleaned.get("from"),
                end=cleaned.get("to"),
                group_by=group_by,
                filters=filters,
            )
        except selectors.InvalidWindow as exc:
            raise ValidationError({"from": [str(exc)]}) from None
        return Response(UsageStatsSerializer(stats).data)


@extend_schema(
    tags=USAGE_TAG,
    summary="The tenant's usage log, newest first",
    description="One row per LLM call. Paginated (`page`, `page_size`) and filterable. "
    "Rows never contain keys, nor prompts unless the operator turned prompt logging on.",
    parameters=USAGE_FILTER_PARAMETERS,
    responses={200: UsageLogSerializer(many=True), **error_responses(400, 404)},
)
class UsageLogListView(mixins.ListModelMixin, TenantAPIView):
    queryset = UsageLog.objects.order_by("-created_at", "-id")
    serializer_class = UsageLogSerializer
    filterset_class = UsageLogFilterSet

    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)
