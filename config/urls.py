from django.contrib import admin
from django.urls import include, path

from config.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/build/", include("build_loop.urls")),
    path("v1/", include("llm_providers.gateway.urls")),
]

# --- REST API (issue 4) ---------------------------------------------------------------
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView  # noqa: E402

import config.schema  # noqa: E402,F401  (registers the Bearer scheme with drf-spectacular)

urlpatterns += [
    path("api/", include("llm_providers.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
# JSON errors in the documented shape under /api/; Django's HTML pages elsewhere.
handler400 = "config.exceptions.api_bad_request"
handler403 = "config.exceptions.api_permission_denied"
handler404 = "config.exceptions.api_page_not_found"
handler500 = "config.exceptions.api_server_error"
