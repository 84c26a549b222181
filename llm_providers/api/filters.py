"""Query-string filters for the usage endpoints (django-filter)."""

import re
from datetime import UTC, date, datetime, time, timedelta

import django_filters
from django import forms
from django.utils.dateparse import parse_datetime

from ..models import Endpoint, Provider, UsageLog

DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


class InstantField(forms.Field):
    """An ISO 8601 date or date-time, as an aware UTC datetime.

    Naive values are UTC. A bare date means the start of that day, or with
    `end_of_day=True` the start of the next one, so that `to=2026-11-28` includes the 28th.
    """

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date (2026-11-28) or date-time (2026-11-28T12:00:00Z)."
    }

    def __init__(self, *, end_of_day=False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        value = str(value).strip()
        try:
            if DATE_ONLY.fullmatch(value):
                instant = datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
                if self.end_of_day:
                    instant += timedelta(days=1)
                return instant
            instant = parse_datetime(value)
            if instant is None:
                raise ValueError(value)
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=UTC)
            # Converting to UTC can leave datetime's range (year 1 at +01:00).
            return instant.astimezone(UTC)
        except (ValueError, OverflowError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class StrictBooleanField(forms.Field):
    """`true`/`false` (or 1/0); anything else is an error rather than "no filter"."""

    VALUES = {"true": True, "1": True, "false": False, "0": False}
    default_error_messages = {"invalid": "Enter true or false."}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self.VALUES[str(value).strip().lower()]
        except KeyError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class InstantFilter(django_filters.Filter):
    field_class = InstantField


class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


class UsageLogFilterSet(django_filters.FilterSet):
    """Filters shared by `usage/logs` and `usage/stats`; `from` inclusive, `to` exclusive."""

    provider = django_filters.ChoiceFilter(choices=Provider.choices)
    model = django_filters.CharFilter(max_length=200)
    endpoint = django_filters.ChoiceFilter(choices=Endpoint.choices)
    success = StrictBooleanFilter()
    error_type = django_filters.CharFilter(max_length=40)
    provider_config = django_filters.UUIDFilter(field_name="provider_config_id")

    class Meta:
        model = UsageLog
        fields = ["provider", "model", "endpoint", "success", "error_type", "provider_config"]


# `from` is a keyword, so these two are added under their public names after the class.
UsageLogFilterSet.base_filters["from"] = InstantFilter(
    field_name="created_at",
    lookup_expr="gte",
    label="Start (inclusive), ISO 8601 date or date-time",
)
UsageLogFilterSet.base_filters["to"] = InstantFilter(
    field_name="created_at",
    lookup_expr="lt",
    end_of_day=True,
    label="End (exclusive; a bare date includes that day), ISO 8601",
)
