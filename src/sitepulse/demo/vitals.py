"""Core Web Vitals for simulated page loads, rated with Google's thresholds."""

from __future__ import annotations

import random

from sitepulse.demo.draw import lognormal

# (good up to, poor above), as published at web.dev/vitals.
THRESHOLDS: dict[str, tuple[float, float]] = {
    "LCP": (2500, 4000),
    "INP": (200, 500),
    "CLS": (0.1, 0.25),
    "FCP": (1800, 3000),
    "TTFB": (800, 1800),
}
# Mid-range phones on mobile networks paint later than laptops on office Wi-Fi.
_DEVICE_SLOWDOWN = {"desktop": 1.0, "tablet": 1.25, "mobile": 1.55, "bot": 0.8}


def rating(metric: str, value: float) -> str:
    """`good`, `needs-improvement` or `poor`, the way the web-vitals library rates a value."""
    good, poor = THRESHOLDS[metric]
    if value <= good:
        return "good"
    return "needs-improvement" if value <= poor else "poor"


def sample_vitals(
    rng: random.Random, device: str, *, lcp_factor: float = 1.0, layout_shift_prone: bool = False
) -> dict[str, float]:
    """TTFB, FCP, LCP (ms) and CLS for one page load; LCP has a slow tail."""
    slow = _DEVICE_SLOWDOWN.get(device, 1.0)
    ttfb = lognormal(rng, 300 * (1.35 if slow > 1 else 1.0), 0.45)
    if rng.random() < 0.03:
        ttfb *= rng.uniform(2.5, 5.0)  # a cold cache or a slow backend call
    fcp = ttfb + lognormal(rng, 850 * slow, 0.35)
    lcp = fcp + lognormal(rng, 550 * slow * lcp_factor, 0.55)
    if rng.random() < 0.06:
        lcp += rng.uniform(1500, 6000)  # hero image on a congested network
    roll = rng.random()
    if roll < 0.62:
        cls = lognormal(rng, 0.012, 0.9)
    elif roll < 0.86:
        cls = rng.uniform(0.04, 0.1)
    elif roll < 0.96:
        cls = rng.uniform(0.1, 0.25)
    else:
        cls = rng.uniform(0.25, 0.6)
    if layout_shift_prone:
        cls += rng.uniform(0.02, 0.09)
    return {
        "TTFB": float(round(ttfb)),
        "FCP": float(round(fcp)),
        "LCP": float(round(lcp)),
        "CLS": round(min(cls, 1.5), 4),
    }


def sample_inp(rng: random.Random, device: str) -> float:
    """Interaction to Next Paint (ms) for a page the visitor interacted with."""
    inp = lognormal(rng, 170 if device in ("mobile", "tablet") else 96, 0.55)
    if rng.random() < 0.03:
        inp += rng.uniform(300, 900)  # a long task from a third-party script
    return float(round(max(inp, 8)))
