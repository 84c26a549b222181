"""The REST setup every Switchyard view carries itself, whatever the host's REST_FRAMEWORK.

A host project keeps its own DRF defaults (session authentication, its own renderers and
exception handler) for its own API; Switchyard's views name theirs here, so that including
Switchyard's URLs needs no change to the host's REST_FRAMEWORK setting.
"""

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.renderers import JSONRenderer

from ..authentication import TenantAPIKeyAuthentication, TenantResolverAuthentication
from ..permissions import IsTenantAuthenticated
from .exceptions import api_exception_handler
from .pagination import PageNumberPagination
from .parsers import JSONParser


class SwitchyardAPIMixin:
    """Authentication, permission, parser, renderer, pagination and error shape."""

    authentication_classes = [TenantAPIKeyAuthentication, TenantResolverAuthentication]
    permission_classes = [IsTenantAuthenticated]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    pagination_class = PageNumberPagination
    filter_backends = [DjangoFilterBackend]

    def get_exception_handler(self):
        return api_exception_handler
