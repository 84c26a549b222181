"""System checks that tell a host project what is missing or wrong (`manage.py check`).

Errors: FIELD_ENCRYPTION_KEY missing or not Fernet keys; an app Switchyard needs missing
from INSTALLED_APPS; SWITCHYARD_TENANT_MODEL not a model, or one Switchyard cannot use;
SWITCHYARD_TENANT_RESOLVER not importable; a model with a tenant foreign key whose
default manager does not scope by tenant (E030). Warnings: things that work but probably not
as the host intends. (The LLM_* settings are checked in llm_providers.)
"""

from cryptography.fernet import Fernet
from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.utils.module_loading import import_string

from . import get_tenant_model
from .models import is_tenant_scoped

TAG = "switchyard"

# App → the apps it needs, in INSTALLED_APPS terms.
REQUIRED_APPS = {
    "tenants": ["rest_framework", "rest_framework_api_key"],
    "llm_providers": ["tenants", "rest_framework", "django_filters"],
    "build_loop": ["tenants", "llm_providers"],
}
TEXT_PK_TYPES = ("CharField", "SlugField")
INTEGER_PK_TYPES = (
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
)
BODY_LIMIT_MIDDLEWARE = "tenants.api.middleware.ApiBodyLimitMiddleware"


@register(TAG)
def check_installed_apps(app_configs=None, **kwargs):
    errors = []
    for app, needed in REQUIRED_APPS.items():
        if not apps.is_installed(app):
            continue
        for other in needed:
            if not apps.is_installed(other):
                errors.append(
                    Error(
                        f"{app!r} needs {other!r} in INSTALLED_APPS.",
                        hint=f"Add {other!r} to INSTALLED_APPS (see the README, "
                        "'Use it in your Django project').",
                        id="tenants.E001",
                    )
                )
    return errors


@register(TAG)
def check_field_encryption_key(app_configs=None, **kwargs):
    if not apps.is_installed("llm_providers"):
        return []
    keys = getattr(settings, "FIELD_ENCRYPTION_KEY", None)
    if isinstance(keys, str):
        keys = keys.split(",")
    if not isinstance(keys, list | tuple):
        keys = [keys] if keys else []
    # Blank entries are skipped (a trailing comma); anything else must parse, so that a
    # key of the wrong type is named, not silently ignored.
    keys = [k.strip() if isinstance(k, str | bytes) else k for k in keys]
    keys = [k for k in keys if k not in ("", b"")]
    hint = (
        "Set FIELD_ENCRYPTION_KEY to one or more Fernet keys (a list, or a comma-separated "
        "string, newest first). Make one with: python -c 'from cryptography.fernet import "
        "Fernet; print(Fernet.generate_key().decode())'"
    )
    if not keys:
        return [
            Error(
                "FIELD_ENCRYPTION_KEY is not set: provider API keys cannot be encrypted.",
                hint=hint,
                id="tenants.E002",
            )
        ]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # The message names the key's position, never the key material.
            return [
                Error(
                    f"FIELD_ENCRYPTION_KEY: key {position} is not a valid Fernet key.",
                    hint=hint,
                    id="tenants.E003",
                )
            ]
    return []


@register(TAG)
def check_tenant_model(app_configs=None, **kwargs):
    label = settings.SWITCHYARD_TENANT_MODEL
    if not isinstance(label, str):
        return [
            Error(
                "SWITCHYARD_TENANT_MODEL must be a string 'app_label.ModelName'.",
                id="tenants.E010",
            )
        ]
    try:
        model = get_tenant_model()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="Point SWITCHYARD_TENANT_MODEL at a concrete model of an installed app, "
                "before the first migrate.",
                id="tenants.E011",
            )
        ]
    errors = []
    if model._meta.abstract or model._meta.proxy or model._meta.swapped:
        errors.append(
            Error(
                f"SWITCHYARD_TENANT_MODEL {label!r} must be a concrete model "
                "(not abstract, proxy or swapped).",
                id="tenants.E012",
            )
        )
    pk_type = model._meta.pk.get_internal_type()
    if pk_type not in TEXT_PK_TYPES + INTEGER_PK_TYPES:
        errors.append(
            Error(
                f"SWITCHYARD_TENANT_MODEL {label!r} has a {pk_type} primary key; Switchyard "
                "supports string (CharField, SlugField) and integer primary keys.",
                id="tenants.E013",
            )
        )
    try:
        is_active = model._meta.get_field("is_active")
    except FieldDoesNotExist:
        is_active = None
    if not isinstance(is_active, models.BooleanField) or not is_active.concrete:
        errors.append(
            Error(
                f"SWITCHYARD_TENANT_MODEL {label!r} needs a BooleanField 'is_active': "
                "disabled tenants' keys and calls are refused.",
                hint="Add `is_active = models.BooleanField(default=True)`, or inherit "
                "tenants.models.AbstractTenant.",
                id="tenants.E014",
            )
        )
    return errors


# The apps whose models are checked for tenant scoping (a host's own models are its own).
SCOPED_APPS = ("tenants", "llm_providers", "build_loop")


@register(TAG)
def check_tenant_scoped_managers(app_configs=None, **kwargs):
    """Every model with a foreign key to the tenant model has a tenant-scoped default
    manager (like Django's CurrentSiteManager check), so `for_tenant` always exists."""
    try:
        tenant_model = get_tenant_model()
    except ImproperlyConfigured:
        return []  # check_tenant_model reports it
    errors = []
    if app_configs is None:
        models_ = apps.get_models()
    else:
        models_ = [model for config in app_configs for model in config.get_models()]
    for model in models_:
        if model._meta.app_label not in SCOPED_APPS or model is tenant_model:
            continue
        tenant_fks = [
            f.name
            for f in model._meta.concrete_fields
            if f.is_relation and f.related_model is tenant_model
        ]
        if tenant_fks and not is_tenant_scoped(model):
            errors.append(
                Error(
                    f"{model._meta.label} has a foreign key to the tenant model "
                    f"({', '.join(tenant_fks)}) but its default manager does not scope by "
                    "tenant.",
                    hint="Make its default manager's queryset a "
                    "tenants.models.TenantScopedQuerySet (e.g. `objects = "
                    "MyQuerySet.as_manager()` with `class MyQuerySet(TenantScopedQuerySet)`).",
                    obj=model,
                    id="tenants.E030",
                )
            )
    return errors


@register(TAG)
def check_tenant_resolver(app_configs=None, **kwargs):
    path = settings.SWITCHYARD_TENANT_RESOLVER
    if not path:
        return []
    try:
        resolver = import_string(path) if isinstance(path, str) else None
    except ImportError as exc:
        resolver = None
        reason = str(exc)
    else:
        reason = "it is not a dotted path" if resolver is None else "it is not callable"
    if resolver is None or not callable(resolver):
        return [
            Error(
                f"SWITCHYARD_TENANT_RESOLVER {path!r} cannot be used: {reason}.",
                hint="Name a callable `(request) -> tenant or None`, e.g. "
                "'myapp.tenancy.tenant_for_request'.",
                id="tenants.E020",
            )
        ]
    return []


@register(TAG)
def check_rest_setup(app_configs=None, **kwargs):
    warnings = []
    if BODY_LIMIT_MIDDLEWARE not in getattr(settings, "MIDDLEWARE", []):
        warnings.append(
            Warning(
                f"{BODY_LIMIT_MIDDLEWARE} is not in MIDDLEWARE: REST request bodies are "
                "not limited to API_MAX_BODY_BYTES before they are read.",
                hint="Add it before django.middleware.common.CommonMiddleware.",
                id="tenants.W001",
            )
        )
    if apps.is_installed("build_loop"):
        backend = (getattr(settings, "TASKS", {}).get("default") or {}).get("BACKEND", "")
        if backend.endswith("ImmediateBackend") or not backend:
            warnings.append(
                Warning(
                    "The default TASKS backend runs tasks immediately: builds would run "
                    "inside the web request that starts them.",
                    hint="Use a queue, e.g. TASKS = {'default': {'BACKEND': "
                    "'django_tasks_db.DatabaseBackend'}} with 'django_tasks_db' installed "
                    "and `manage.py db_worker` running.",
                    id="tenants.W002",
                )
            )
    return warnings
