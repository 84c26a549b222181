"""The provider, test and usage endpoints: `path("api/", include("llm_providers.urls.api"))`."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from ..api import views

router = SimpleRouter(trailing_slash=False)
router.register("llm/provider/configs", views.ProviderConfigViewSet, basename="llm-provider-config")

urlpatterns = [
    path(
        "llm/provider/configure",
        views.ProviderConfigureView.as_view(),
        name="llm-provider-configure",
    ),
    path("llm/provider/status", views.ProviderStatusView.as_view(), name="llm-provider-status"),
    path("llm/test", views.ConnectionTestView.as_view(), name="llm-test"),
    path("llm/usage/stats", views.UsageStatsView.as_view(), name="llm-usage-stats"),
    path("llm/usage/logs", views.UsageLogListView.as_view(), name="llm-usage-logs"),
    *router.urls,
]
