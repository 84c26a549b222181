"""URLs of the audit endpoint (included under /api/audit/)."""

from django.urls import path

from .api.audit import AuditEventListView

urlpatterns = [
    path("events", AuditEventListView.as_view(), name="audit-events"),
]
