"""Page-number pagination with a bounded, client-selectable page size."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class StablePageNumberPagination(PageNumberPagination):
    """Pages of a queryset the view orders by primary key, so pages never overlap."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
