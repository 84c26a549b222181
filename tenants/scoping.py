"""Tenant scoping for API views: every queryset goes through `for_tenant`."""


class TenantScopedViewMixin:
    """Narrows `queryset` to the authenticated tenant, so no endpoint can forget it.

    Objects of another tenant are simply not in the queryset, so they give 404.
    """

    def get_tenant(self):
        return self.request.user.tenant

    def get_queryset(self):
        return super().get_queryset().for_tenant(self.get_tenant())
