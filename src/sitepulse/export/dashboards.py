"""The executive and marketing dashboards, defined once: panels, queries, colours, layout.

Every panel names the built-in UI panel it mirrors (`builtin`), and its PromQL reads
only what `/metrics` exposes (export/metrics.py, export/kpi_gauges.py). Colours come
from the same rules the embedded analyses use: KPI targets and the yellow band from
analyse/kpis.py, Google's Web Vitals thresholds from analyse/vitals.py.
The panel model is export/panels.py; export/grafana.py renders these definitions to
Grafana JSON.

Where the numbers come from:
- Numbers over a window (conversion rate, leads by channel, attribution, funnel, quality)
  read the `sitepulse_kpi_*` gauges: the built-in UI's own analyses of the trailing
  `analysis.kpi_window_days` (7 days by default), recomputed in the background. They are
  exact and agree with the built-in views; Grafana's time picker does not move that
  window. Counters could not give the same answer: they count on ingest (an import or
  backfill lands "now"), reset on restart, and PromQL's increase() extrapolates and
  misses a series' first increment.
- Trends and live traffic read the counters and histograms: leads per day from
  `sitepulse_leads_total`, Web Vitals p75 and page views over the dashboard's range.
- Vitals p75 comes from histograms whose bucket bounds include Google's good / poor
  thresholds, so the interpolated estimate falls on the right side of an edge whenever
  at least 75 % of the samples do: the colour (the rating) is exact, the value
  approximate. The built-in UI shows exact percentiles.

Built-in views with no Prometheus form, shown as a text panel pointing at the UI:
- experiments: a verdict is a decision rule (always-valid sequential test over daily
  looks, sample-ratio check, Holm correction), not a number a query recomputes; per-variant
  running conversion rates without it invite peeking, which that test exists to prevent.
  Experiment and variant names are also user-defined, so they are unsafe as labels.
- top_paths: paths to conversion are sequences of URLs; one label value per sequence is
  unbounded cardinality.
Attribution, by contrast, is expressible: six models x a bounded set of channels are
gauges (`sitepulse_kpi_attributed_leads{model}`), shown side by side.

Uptime: no synthetic checks exist yet, so the panel reads
`sitepulse_synthetic_checks_configured` (0) and a value mapping shows "no checks configured
yet" rather than a number nobody measured. When checks land, the panel's query becomes
their success ratio and gets the 99.95 % SLO as thresholds.
"""

from __future__ import annotations

from typing import Final

from sitepulse.analyse.attribution import AttributionModel
from sitepulse.analyse.kpis import TARGETS, YELLOW_BAND, Target
from sitepulse.analyse.vitals import CORE_METRICS, CWV_TARGET
from sitepulse.export.metrics import vital_histogram_name
from sitepulse.export.panels import (
    Dashboard,
    Panel,
    Query,
    ValueText,
    rating_bands,
    target_bands,
)

SITE_VARIABLE_QUERY: Final = "label_values(sitepulse_kpi_conversion_rate, site)"
"""Grafana's `site` variable: every configured site has this gauge from the first refresh."""
EXECUTIVE_ATTRIBUTION_MODEL: Final = AttributionModel.LAST_NON_DIRECT
"""The model behind the executive's value by channel (Google Analytics' long-time default)."""
SLO_UPTIME: Final = 0.9995


def _ui_only(builtin: str, title: str, why: str, *, width: int = 12) -> Panel:
    path = f"/marketing#{builtin}"
    return Panel(
        builtin=builtin,
        title=title,
        kind="text",
        description=f"Lives in sitepulse's built-in UI at {path}.",
        width=width,
        height=6,
        text=(
            f"**{title}** lives in sitepulse's built-in UI: open `{path}` on your sitepulse "
            f"server.\n\n{why}"
        ),
    )


_S = '{site="$site"}'
_WINDOW = "over the trailing KPI window (`analysis.kpi_window_days`, 7 days by default)"


def _pct(value: float) -> str:
    return f"{value * 100:.4g} %"


def _p75(metric: str, by: str = "") -> str:
    name = vital_histogram_name(metric)
    return (
        f"histogram_quantile(0.75, sum by (le{', ' + by if by else ''}) "
        f"(increase({name}_bucket{_S}[$__range])))"
    )


def _target_text(name: str, shown: str) -> str:
    sign = ">" if TARGETS[name].strict else ">="
    return (
        f"Target {sign} {shown}: green when met, yellow when short by at most "
        f"{YELLOW_BAND:.0%} of the target, red below."
    )


_CONVERSION = target_bands(TARGETS["conversion_rate"])
_SCORE = target_bands(TARGETS["avg_lead_score"])
_SIGNUP = target_bands(TARGETS["email_signup_rate"])
_ENGAGED = target_bands(TARGETS["engaged_time_per_session"])
_CWV = target_bands(Target(CWV_TARGET))

_VITALS_P75 = tuple(
    Query(
        _p75(metric),
        f"{metric} p75",
        unit="none" if metric == "CLS" else "s",
        decimals=2,
        thresholds=rating_bands(metric),
    )
    for metric in CORE_METRICS
)

EXECUTIVE: Final = Dashboard(
    uid="sitepulse-executive",
    title="sitepulse · Executive",
    description="Are leads flowing, is the site up, which channels pay? (sitepulse)",
    tags=("sitepulse", "executive"),
    panels=(
        Panel(
            builtin="conversion_rate",
            title="Conversion rate",
            kind="stat",
            description=(
                f"Sessions with a lead / sessions {_WINDOW}; bots and test leads excluded. "
                + _target_text("conversion_rate", _pct(_CONVERSION.green))
            ),
            queries=(Query(f"sitepulse_kpi_conversion_rate{_S}", "conversion rate"),),
            unit="percentunit",
            decimals=2,
            thresholds=_CONVERSION,
        ),
        Panel(
            builtin="leads_today",
            title="Leads today",
            kind="stat",
            description="Leads since midnight in the site's time zone; tests excluded.",
            queries=(Query(f"sitepulse_kpi_leads_today{_S}", "leads today"),),
            decimals=0,
        ),
        Panel(
            builtin="avg_lead_score",
            title="Average lead score",
            kind="stat",
            description=(
                f"Mean score of the scored leads {_WINDOW}. "
                + _target_text("avg_lead_score", f"{_SCORE.green:g}")
            ),
            queries=(Query(f"sitepulse_kpi_average_lead_score{_S}", "average score"),),
            decimals=1,
            thresholds=_SCORE,
        ),
        Panel(
            builtin="uptime",
            title="Uptime",
            kind="stat",
            description=(
                f"Availability against the {_pct(SLO_UPTIME)} SLO, from synthetic checks. "
                "No checks are configured yet, so this says so rather than show a guess."
            ),
            queries=(Query(f"sitepulse_synthetic_checks_configured{_S}", "checks"),),
            decimals=0,
            mappings=(ValueText(0, "no checks configured yet"),),
        ),
        Panel(
            builtin="leads_trend",
            title="Leads per day",
            kind="timeseries",
            description=(
                "Leads stored per day (counted when stored, so imported or backfilled "
                "leads count on the day they arrived); tests excluded."
            ),
            queries=(Query(f"sum(increase(sitepulse_leads_total{_S}[$__interval]))", "leads"),),
            decimals=0,
            width=12,
            height=8,
            interval="1d",
        ),
        Panel(
            builtin="cwv_compliance",
            title="Core Web Vitals",
            kind="stat",
            description=(
                f"Share of page loads passing every Core Web Vital they measured {_WINDOW}; "
                f"target {_pct(CWV_TARGET)} (yellow within {YELLOW_BAND:.0%} of it). "
                "Beside it each metric's p75 over the dashboard's range, coloured by "
                "Google's good / needs improvement / poor thresholds."
            ),
            queries=(
                Query(
                    f"sitepulse_kpi_cwv_pass_rate{_S}",
                    "page loads passing",
                    unit="percentunit",
                    decimals=1,
                    thresholds=_CWV,
                ),
                *_VITALS_P75,
            ),
            width=12,
            height=8,
        ),
        Panel(
            builtin="leads_by_channel",
            title="Leads by channel",
            kind="piechart",
            description=f"Leads {_WINDOW} by the channel of the session they came in.",
            queries=(Query(f"sum by (channel) (sitepulse_kpi_channel_leads{_S})", "{{channel}}"),),
            decimals=0,
            width=8,
            height=9,
        ),
        Panel(
            builtin="value_by_channel",
            title="Lead value by channel",
            kind="barchart",
            description=(
                f"Score-weighted lead value {_WINDOW}: each lead's score credited to "
                f"channels by the {EXECUTIVE_ATTRIBUTION_MODEL.value} attribution model "
                "(no revenue is recorded, so a lead's score stands for its value)."
            ),
            queries=(
                Query(
                    "sum by (channel) (sitepulse_kpi_attributed_lead_value"
                    f'{{site="$site", model="{EXECUTIVE_ATTRIBUTION_MODEL.value}"}})',
                    "{{channel}}",
                ),
            ),
            decimals=0,
            width=8,
            height=9,
            rows="channel",
        ),
        Panel(
            builtin="kpi_summary",
            title="Business KPIs",
            kind="stat",
            description=f"The business KPIs {_WINDOW}, each coloured by its own target.",
            queries=(
                Query(
                    f"sitepulse_kpi_conversion_rate{_S}",
                    "conversion rate",
                    unit="percentunit",
                    decimals=2,
                    thresholds=_CONVERSION,
                ),
                Query(f"sum(sitepulse_kpi_leads{_S})", "leads", decimals=0),
                Query(
                    f"sitepulse_kpi_average_lead_score{_S}",
                    "average lead score",
                    decimals=1,
                    thresholds=_SCORE,
                ),
                Query(
                    f"sitepulse_kpi_email_signup_rate{_S}",
                    "email signup rate",
                    unit="percentunit",
                    decimals=1,
                    thresholds=_SIGNUP,
                ),
                Query(
                    f"sitepulse_kpi_engaged_seconds_per_session{_S}",
                    "engaged time per session",
                    unit="s",
                    decimals=0,
                    thresholds=_ENGAGED,
                ),
                Query(
                    f"sitepulse_kpi_cwv_pass_rate{_S}",
                    "Core Web Vitals pass rate",
                    unit="percentunit",
                    decimals=1,
                    thresholds=_CWV,
                ),
            ),
            width=8,
            height=9,
        ),
    ),
)

MARKETING: Final = Dashboard(
    uid="sitepulse-marketing",
    title="sitepulse · Marketing intelligence",
    description="Which campaign, page and channel converts, and how good are its leads?",
    tags=("sitepulse", "marketing"),
    panels=(
        Panel(
            builtin="funnel",
            title="Lead funnel",
            kind="barchart",
            description=(
                f"Visitors reaching each step of the lead funnel, in order, {_WINDOW}: "
                "landing, service page, contact page, form start, form submit, lead stored "
                "(or the `lead` funnel of the configuration)."
            ),
            queries=(
                Query(
                    f"sum by (step, step_name) (sitepulse_kpi_lead_funnel_units{_S})",
                    "{{step_name}}",
                ),
            ),
            decimals=0,
            width=12,
            height=9,
            rows="step_name",
            order_by="step",
        ),
        Panel(
            builtin="attribution",
            title="Attribution by model",
            kind="barchart",
            description=(
                f"Leads credited to each channel {_WINDOW} under the six attribution models "
                "side by side; where the bars differ, the models disagree about the channel."
            ),
            queries=(
                Query(
                    f"sum by (channel, model) (sitepulse_kpi_attributed_leads{_S})",
                    "{{channel}} {{model}}",
                ),
            ),
            decimals=1,
            width=12,
            height=9,
            rows="channel",
            columns="model",
        ),
        Panel(
            builtin="lead_quality_by_source",
            title="Lead quality by channel",
            kind="barchart",
            description=f"Leads {_WINDOW} by channel, stacked by score tier.",
            queries=(
                Query(
                    f"sum by (channel, tier) (sitepulse_kpi_channel_leads{_S})",
                    "{{channel}} {{tier}}",
                ),
            ),
            decimals=0,
            width=12,
            height=9,
            rows="channel",
            columns="tier",
            stacked=True,
        ),
        Panel(
            builtin="channel_performance",
            title="Channel performance",
            kind="table",
            description=(
                f"Per channel {_WINDOW}: sessions, leads, conversion rate and average lead "
                f"score (coloured by their targets) and score-weighted lead value "
                f"({EXECUTIVE_ATTRIBUTION_MODEL.value}). No cost data is recorded, so no ROI."
            ),
            queries=(
                Query(
                    f"sum by (channel) (sitepulse_kpi_channel_sessions{_S})", "Sessions", decimals=0
                ),
                Query(f"sum by (channel) (sitepulse_kpi_channel_leads{_S})", "Leads", decimals=0),
                Query(
                    f"sum by (channel) (sitepulse_kpi_channel_conversion_rate{_S})",
                    "Conversion rate",
                    unit="percentunit",
                    decimals=2,
                    thresholds=_CONVERSION,
                ),
                Query(
                    f"sum by (channel) (sitepulse_kpi_channel_average_lead_score{_S})",
                    "Average lead score",
                    decimals=1,
                    thresholds=_SCORE,
                ),
                Query(
                    "sum by (channel) (sitepulse_kpi_attributed_lead_value"
                    f'{{site="$site", model="{EXECUTIVE_ATTRIBUTION_MODEL.value}"}})',
                    "Lead value",
                    decimals=0,
                ),
            ),
            width=12,
            height=9,
            rows="channel",
        ),
        Panel(
            builtin="vitals_by_page",
            title="Web Vitals by page group",
            kind="table",
            description=(
                "Page views and the p75 of LCP, INP and CLS per page group over the "
                "dashboard's range, coloured by Google's thresholds (the colour is exact: "
                "the histograms' bucket bounds are the thresholds)."
            ),
            queries=(
                Query(
                    f"sum by (page_group) (increase(sitepulse_pageviews_total{_S}[$__range]))",
                    "Page views",
                    decimals=0,
                ),
                *(
                    Query(
                        _p75(metric, "page_group"),
                        f"{metric} p75",
                        unit="none" if metric == "CLS" else "s",
                        decimals=2,
                        thresholds=rating_bands(metric),
                    )
                    for metric in CORE_METRICS
                ),
            ),
            width=12,
            height=9,
            rows="page_group",
        ),
        Panel(
            builtin="conversion_by_lcp",
            title="Conversion rate by LCP",
            kind="barchart",
            description=(
                f"Share of sessions with a lead among sessions with a page load in each LCP "
                f"range {_WINDOW}: what a slow page costs in leads."
            ),
            queries=(
                Query(
                    f"sum by (lcp_range) (sitepulse_kpi_lcp_conversion_rate{_S})",
                    "{{lcp_range}}",
                ),
            ),
            unit="percentunit",
            decimals=2,
            width=12,
            height=9,
            rows="lcp_range",
            order_by="lcp_range",
        ),
        _ui_only(
            "experiments",
            "A/B tests",
            "A verdict is a decision rule (an always-valid sequential test over daily looks, "
            "a sample-ratio check, Holm's correction), not a number a query can recompute; "
            "running conversion rates per variant without it invite peeking, which that "
            "test exists to prevent.",
        ),
        _ui_only(
            "top_paths",
            "Top paths to conversion",
            "Paths are sequences of URLs: one Prometheus label value per sequence would "
            "have no bound. Page views by page group are in *Web Vitals by page group*.",
        ),
    ),
)

DASHBOARDS: Final[tuple[Dashboard, ...]] = (EXECUTIVE, MARKETING)
