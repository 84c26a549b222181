from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]

from config.health import healthz  # noqa: E402

urlpatterns.append(path("healthz", healthz, name="healthz"))
