"""Tenant scoping for API views: every queryset goes through `for_tenant`."""

from .api.views import SwitchyardAPIMixin


class TenantScopedViewMixin(SwitchyardAPIMixin):
    """Narrows `queryset` to the authenticated tenant, so no endpoint can forget it.

    Objects of another tenant are simply not in the queryset, so they give 404. It also
    carries Switchyard's REST setup (SwitchyardAPIMixin), independent of the host's.
    """

    def get_tenant(self):
        return self.request.user.tenant

    def get_queryset(self):
        return super().get_queryset().for_tenant(self.get_tenant())
