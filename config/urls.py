from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import config.schema  # noqa: F401  (registers the tenant Bearer scheme with drf-spectacular)
from config.health import healthz
from llm_providers.observability.views import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/build/", include("build_loop.urls")),
    path("api/audit/", include("tenants.urls")),
    path("api/", include("llm_providers.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("v1/", include("llm_providers.gateway.urls")),
]

# JSON errors in the documented shape under /api/; Django's HTML pages elsewhere.
handler400 = "config.exceptions.api_bad_request"
handler403 = "config.exceptions.api_permission_denied"
handler404 = "config.exceptions.api_page_not_found"
handler500 = "config.exceptions.api_server_error"
