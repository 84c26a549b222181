"""`GET /healthz`: `path("", include("llm_providers.urls.health"))`."""

from django.urls import path

from ..health import healthz

urlpatterns = [path("healthz", healthz, name="healthz")]
