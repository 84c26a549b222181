"""The admin's usage dashboard: per-day totals by provider, drawn as inline SVG, with
latency percentiles, errors by type and the top tenants by cost.

The numbers come from grouped queries over the usage rows of the window (the filters
provider, model, endpoint and outcome apply to all of them); the charts are plain SVG
built here, so the page needs no JavaScript and no internet access. Percentiles need the
rows themselves (the daily rollup keeps only sums and maxima), so the dashboard reads the
rows, not the rollup: a pruned day (usage retention) shows only what is left of it.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django import forms
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..errors import ErrorType
from ..models import Endpoint, Provider, ProviderConfig, UsageDailyRollup, UsageLog

DEFAULT_DAYS = 30
MAX_DAYS = 366
PROVIDER_COLOURS = {
    "openai": "#10a37f",
    "anthropic": "#d97757",
    "groq": "#7b4fd6",
    "local": "#3572b0",
}
OTHER_COLOURS = ("#8c8c8c", "#c9a227", "#2aa1a1", "#b3476b")
METRICS = (
    ("requests", "Requests"),
    ("tokens", "Tokens"),
    ("cost", "Cost (USD)"),
    ("errors", "Errors"),
)
CHART_WIDTH, CHART_HEIGHT = 760, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 12, 12, 28


DATE_INPUT = forms.DateInput(attrs={"type": "date"})


PERCENTILES = (50, 90, 95, 99)
TOP_TENANTS = 10
ANY = [("", "all")]


def outcome_choices():
    return [*ANY, ("success", "success"), ("failure", "any failure")] + [
        (f"error:{t.value}", f"error: {t.value}") for t in ErrorType
    ]


def model_choices():
    """Models that were used (the rollup's) or are configured: a short, real list."""
    models = set(UsageDailyRollup.objects.values_list("model", flat=True).distinct())
    models |= set(ProviderConfig.objects.values_list("default_model", flat=True).distinct())
    models |= set(
        UsageLog.objects.filter(created_at__gte=timezone.now() - dt.timedelta(days=2))
        .values_list("model", flat=True)
        .distinct()
    )
    return [*ANY, *((m, m) for m in sorted(m for m in models if m))]


class DashboardFilterForm(forms.Form):
    tenant = forms.CharField(required=False, max_length=64, label="Tenant id")
    start = forms.DateField(required=False, label="From", widget=DATE_INPUT)
    end = forms.DateField(required=False, label="To", widget=DATE_INPUT)
    provider = forms.ChoiceField(required=False, choices=[*ANY, *Provider.choices])
    model = forms.ChoiceField(required=False, choices=ANY)
    endpoint = forms.ChoiceField(required=False, choices=[*ANY, *Endpoint.choices])
    outcome = forms.ChoiceField(required=False, choices=outcome_choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = model_choices()

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if start > end:
                raise forms.ValidationError("“From” must not be after “To”.")
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        return cleaned

    @classmethod
    def for_request(cls, params):
        """Bound to the query string, or showing the default range when there is none."""
        if params:
            return cls(params)
        defaults = cls().filters()
        return cls(initial={"start": defaults["start"], "end": defaults["end"]})

    def filters(self) -> dict:
        """The chosen filters, or the defaults (last 30 days, all tenants) when invalid."""
        today = timezone.localdate()
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        end = data.get("end") or today
        start = data.get("start") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if (end - start).days >= MAX_DAYS:
            start = end - dt.timedelta(days=MAX_DAYS - 1)
        return {
            "tenant_id": (data.get("tenant") or "").strip() or None,
            "start": start,
            "end": end,
            "provider": data.get("provider") or None,
            "model": data.get("model") or None,
            "endpoint": data.get("endpoint") or None,
            "outcome": data.get("outcome") or None,
        }


def filtered_usage_logs(
    *, tenant_id=None, start: dt.date, end: dt.date, provider=None, model=None, endpoint=None,
    outcome=None,
):  # fmt: skip
    """The usage rows of the window and filters (days in the current time zone)."""
    tz = timezone.get_current_timezone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    logs = UsageLog.objects.filter(created_at__gte=since, created_at__lt=until)
    if tenant_id:
        logs = logs.for_tenant(tenant_id)
    for name, value in (("provider", provider), ("model", model), ("endpoint", endpoint)):
        if value:
            logs = logs.filter(**{name: value})
    if outcome == "success":
        logs = logs.filter(success=True)
    elif outcome == "failure":
        logs = logs.filter(success=False)
    elif outcome and outcome.startswith("error:"):
        logs = logs.filter(success=False, error_type=outcome.removeprefix("error:"))
    return logs


def usage_by_day_and_provider(logs=None, **window_and_filters):
    """Rows of (day, provider, requests, tokens, cost, errors), computed in the database;
    of `logs`, or of `filtered_usage_logs(**window_and_filters)`."""
    if logs is None:
        logs = filtered_usage_logs(**window_and_filters)
    tz = timezone.get_current_timezone()
    return (
        logs.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day", "provider")
        .annotate(
            requests=Count("id"),
            tokens=Sum("tokens_used"),
            cost=Sum("cost_usd"),
            errors=Count("id", filter=Q(success=False)),
        )
        .order_by("day", "provider")
    )


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass
class Chart:
    key: str
    label: str
    total: str
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    plot_left: int = PAD_LEFT
    plot_bottom: int = CHART_HEIGHT - PAD_BOTTOM
    plot_right: int = CHART_WIDTH - PAD_RIGHT


def _fmt(metric, value) -> str:
    if metric == "cost":
        return f"${value:,.4f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{float(value):,.1f}"


def _colours(providers):
    colours, spare = {}, iter(OTHER_COLOURS * 8)
    for provider in providers:
        colours[provider] = PROVIDER_COLOURS.get(provider) or next(spare)
    return colours


def _chart(metric, label, days, providers, values, colours) -> Chart:
    """Stacked bars: one per day, one segment per provider."""
    totals = [sum(values[p].get(day, 0) for p in providers) for day in days]
    peak = max(totals, default=0) or 1
    chart = Chart(key=metric, label=label, total=_fmt(metric, sum(totals)))
    plot_height = chart.plot_bottom - PAD_TOP
    slot = (chart.plot_right - chart.plot_left) / max(len(days), 1)
    bar_width = max(slot * 0.8, 1)
    for index, day in enumerate(days):
        x = chart.plot_left + index * slot + (slot - bar_width) / 2
        y = chart.plot_bottom
        for provider in providers:
            value = values[provider].get(day, 0)
            if not value:
                continue
            height = plot_height * float(value) / float(peak)
            y -= height
            chart.bars.append(
                Bar(
                    x=round(x, 2),
                    y=round(y, 2),
                    width=round(bar_width, 2),
                    height=round(height, 2),
                    colour=colours[provider],
                    title=f"{day.isoformat()} {provider}: {_fmt(metric, value)}",
                )
            )
    for fraction in (0, 0.5, 1):
        y = chart.plot_bottom - plot_height * fraction
        chart.y_ticks.append((round(y, 2), _fmt(metric, float(peak) * fraction)))
    if days:
        picks = sorted({0, len(days) // 2, len(days) - 1})
        for index in picks:
            x = chart.plot_left + index * slot + slot / 2
            chart.x_labels.append((round(x, 2), days[index].strftime("%b %d")))
    return chart


def latency_percentiles(logs) -> list[tuple[str, str]]:
    """p50…p99 of latency_ms (nearest rank), one indexed-free ORDER BY … OFFSET 1 each."""
    count = logs.count()
    out = []
    for p in PERCENTILES:
        if not count:
            out.append((f"p{p}", "—"))
            continue
        rank = max(1, -(-p * count // 100))  # ceil(p% of count), 1-based
        value = (
            logs.order_by("latency_ms").values_list("latency_ms", flat=True)[rank - 1 : rank]
        ).first()
        out.append((f"p{p}", f"{value:,} ms"))
    return out


def errors_by_type(logs) -> list[dict]:
    rows = (
        logs.filter(success=False)
        .values("error_type")
        .annotate(requests=Count("id"))
        .order_by("-requests", "error_type")
    )
    return [{"error_type": r["error_type"] or "unknown", "requests": r["requests"]} for r in rows]


def top_tenants_by_cost(logs, limit: int = TOP_TENANTS) -> list[dict]:
    rows = (
        logs.values("tenant_id")
        .annotate(cost=Sum("cost_usd"), requests=Count("id"), tokens=Sum("tokens_used"))
        .filter(cost__gt=0)
        .order_by("-cost", "tenant_id")[:limit]
    )
    return [
        {
            "tenant_id": r["tenant_id"],
            "cost": _fmt("cost", r["cost"]),
            "requests": _fmt("requests", r["requests"]),
            "tokens": _fmt("tokens", r["tokens"] or 0),
        }
        for r in rows
    ]


def usage_dashboard(
    *, tenant_id=None, start: dt.date, end: dt.date, provider=None, model=None, endpoint=None,
    outcome=None,
) -> dict:  # fmt: skip
    """Everything the dashboard template needs: charts, legend, totals and the tables."""
    logs = filtered_usage_logs(
        tenant_id=tenant_id, start=start, end=end, provider=provider, model=model,
        endpoint=endpoint, outcome=outcome,
    )  # fmt: skip
    rows = list(usage_by_day_and_provider(logs))
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    providers = sorted({row["provider"] for row in rows})
    colours = _colours(providers)
    values = {m: {p: {} for p in providers} for m, _ in METRICS}
    totals = {p: {"requests": 0, "tokens": 0, "cost": Decimal(0), "errors": 0} for p in providers}
    for row in rows:
        for metric, _ in METRICS:
            value = row[metric] or 0
            values[metric][row["provider"]][row["day"]] = value
            totals[row["provider"]][metric] += value
    return {
        "tenant_id": tenant_id,
        "start": start,
        "end": end,
        "charts": [
            _chart(metric, label, days, providers, values[metric], colours)
            for metric, label in METRICS
        ],
        "legend": [(provider, colours[provider]) for provider in providers],
        "totals": [
            {"provider": p, **{m: _fmt(m, totals[p][m]) for m, _ in METRICS}} for p in providers
        ],
        "has_data": bool(rows),
        "percentiles": latency_percentiles(logs),
        "errors": errors_by_type(logs),
        "top_tenants": [] if tenant_id else top_tenants_by_cost(logs),
    }
