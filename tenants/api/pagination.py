"""Pagination for every REST list: `?page=N&page_size=M`, with a count and links."""

from django.conf import settings
from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """Page numbers rather than offsets: a huge offset is a database error, a huge page a 404."""

    page_size_query_param = "page_size"

    @property
    def page_size(self):
        return settings.API_PAGE_SIZE

    @property
    def max_page_size(self):
        return settings.API_MAX_PAGE_SIZE
