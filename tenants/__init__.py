"""Tenants: the tenant model (swappable), tenant API keys, REST authentication, scoping."""


def get_tenant_model():
    """The model SWITCHYARD_TENANT_MODEL names (default `tenants.Tenant`), like get_user_model()."""
    from django.apps import apps
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    label = settings.SWITCHYARD_TENANT_MODEL
    try:
        return apps.get_model(label, require_ready=False)
    except ValueError:
        raise ImproperlyConfigured(
            "SWITCHYARD_TENANT_MODEL must be of the form 'app_label.model_name'."
        ) from None
    except LookupError:
        raise ImproperlyConfigured(
            f"SWITCHYARD_TENANT_MODEL refers to model {label!r} that has not been installed."
        ) from None
