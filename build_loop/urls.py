from django.urls import path

from .views import BuildViewSet

# Paths exactly as in SPEC §7: no trailing slash except on the list.
urlpatterns = [
    path("", BuildViewSet.as_view({"get": "list"}), name="build-list"),
    path("start", BuildViewSet.as_view({"post": "start"}), name="build-start"),
    path("<str:pk>", BuildViewSet.as_view({"get": "retrieve"}), name="build-detail"),
    path("<str:pk>/cancel", BuildViewSet.as_view({"post": "cancel"}), name="build-cancel"),
]
