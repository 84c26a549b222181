"""The reference deployment's URLs: Switchyard's surfaces, each one include(), as a host
project adds them (README, "Use it in your Django project"), plus the admin and the schema."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from llm_providers.gateway import views as gateway_views
from llm_providers.observability.views import metrics_view

urlpatterns = [
    # First: /v1 carries nearly all the traffic, and Django tries the patterns in order.
    path("v1/", include("llm_providers.gateway.urls")),
    path("v1", gateway_views.not_found),
    path("admin/", admin.site.urls),
    path("", include("llm_providers.urls.health")),
    path("metrics", metrics_view, name="metrics"),
    path("api/build/", include("build_loop.urls")),
    path("api/audit/", include("tenants.urls")),
    path("api/", include("llm_providers.urls.api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

# JSON errors in the documented shape under /api/; Django's HTML pages elsewhere.
handler400 = "tenants.api.exceptions.api_bad_request"
handler403 = "tenants.api.exceptions.api_permission_denied"
handler404 = "tenants.api.exceptions.api_page_not_found"
handler500 = "tenants.api.exceptions.api_server_error"
