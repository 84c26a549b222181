from django.urls import path

from .views import BuildViewSet

# Paths follow SPEC §7 exactly (no trailing slash except the list); the slashed variants
# are accepted too because clients add them.
build_list = BuildViewSet.as_view({"get": "list"})
build_start = BuildViewSet.as_view({"post": "start"})
build_detail = BuildViewSet.as_view({"get": "retrieve"})
build_cancel = BuildViewSet.as_view({"post": "cancel"})

urlpatterns = [
    path("", build_list, name="build-list"),
    path("start", build_start, name="build-start"),
    path("start/", build_start),
    path("<str:pk>", build_detail, name="build-detail"),
    path("<str:pk>/", build_detail),
    path("<str:pk>/cancel", build_cancel, name="build-cancel"),
    path("<str:pk>/cancel/", build_cancel),
]
