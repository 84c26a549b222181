"""Build endpoints: validate, call a service, serialize. Logic lives in services.py."""

from django.db.models import Count
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from tenants.api.exceptions import Conflict
from tenants.api.views import TenantViewSet

from . import services
from .models import Build
from .serializers import BuildDetailSerializer, BuildSerializer, BuildStartInputSerializer


class BuildViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    # GROUP BY queries ignore Meta.ordering, so the order is repeated here.
    queryset = Build.objects.annotate(steps_done=Count("steps")).order_by("-created_at", "-id")
    filter_backends = [DjangoFilterBackend]
    filterset_fields = ["status"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("steps")
        return queryset

    def get_serializer_class(self):
        if self.action == "start":
            return BuildStartInputSerializer
        if self.action == "list":
            return BuildSerializer
        return BuildDetailSerializer

    @extend_schema(
        request=BuildStartInputSerializer,
        responses={
            202: BuildDetailSerializer,
            400: OpenApiResponse(description="Invalid input (error code `validation_error`)."),
            409: OpenApiResponse(description="No usable LLM provider (`llm_unavailable`)."),
        },
    )
    @action(detail=False, methods=["post"], url_path="start")
    def start(self, request):
        serializer = BuildStartInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            build = services.build_start(tenant=self.get_tenant(), **serializer.validated_data)
        except services.LLMUnavailable as exc:
            raise Conflict(str(exc), code=exc.code) from None
        build = self.get_queryset().get(pk=build.pk)
        data = BuildDetailSerializer(build, context=self.get_serializer_context()).data
        return Response(
            data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["status_url"]}
        )

    @extend_schema(
        request=None,
        responses={
            200: BuildDetailSerializer,
            409: OpenApiResponse(description="The build has already finished (`build_finished`)."),
        },
    )
    @action(detail=True, methods=["post"], url_path="cancel")
    def cancel(self, request, pk=None):
        build = self.get_object()
        try:
            services.build_cancel(build=build)
        except services.BuildNotCancellable as exc:
            raise Conflict(str(exc), code=exc.code, details={"status": exc.status}) from None
        build = self.get_queryset().prefetch_related("steps").get(pk=build.pk)
        return Response(BuildDetailSerializer(build, context=self.get_serializer_context()).data)
