"""GET /api/audit/events: the calling tenant's own audit events (SPEC §15)."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers

from ..models import AuditEvent
from .schema import error_responses
from .views import TenantAPIView


class AuditEventSerializer(serializers.ModelSerializer):
    # No `tenant`: every event shown is the caller's own.
    class Meta:
        model = AuditEvent
        fields = (
            "id",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "changes",
            "ip",
        )
        read_only_fields = fields


class AuditEventFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(help_text="Exact action, e.g. provider_config.update.")
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = ("action", "target_type", "target_id")


@extend_schema(
    tags=["Audit"],
    summary="The tenant's audit events, newest first",
    description="Every change to the tenant's provider configs and API keys: who (`actor`), "
    "what (`action`, `target_type`, `target_id`, `changes` as [before, after]; secrets "
    'only as "[changed]"), when and from where. Paginated; filter by `action`.',
    responses={200: AuditEventSerializer(many=True), **error_responses(400, 404)},
)
class AuditEventListView(mixins.ListModelMixin, TenantAPIView):
    queryset = AuditEvent.objects.order_by("-created_at", "-id")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet

    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)
