"""What a throughput costs: dollars per million images on an instance billed by the hour.

Prices: AWS SageMaker AI on-demand real-time / Batch Transform instance prices, us-east-1, USD per hour,
as listed on https://aws.amazon.com/sagemaker/ai/pricing/ (read mid-2025). APPROXIMATE: AWS changes
them (P5 prices were cut in 2025) and regions differ; pass --price-per-hour for a current figure.
"""

from __future__ import annotations

PRICE_SOURCE = "AWS SageMaker AI on-demand pricing, us-east-1, approximate (mid-2025); override with --price-per-hour"

PRICES_PER_HOUR = {
    "ml.c7i.large": 0.107,
    "ml.c7i.xlarge": 0.214,
    "ml.c7i.2xlarge": 0.428,
    "ml.m5.xlarge": 0.23,
    "ml.m7i.xlarge": 0.242,
    "ml.g4dn.xlarge": 0.736,
    "ml.g5.xlarge": 1.408,
    "ml.g6.xlarge": 1.12,
    "ml.g6e.xlarge": 2.34,
    "ml.p4d.24xlarge": 37.69,
    "ml.p5.48xlarge": 113.07,
}


def default_instance(device: str) -> str:
    return "ml.g5.xlarge" if device.startswith("cuda") else "ml.c7i.xlarge"


def price_per_hour(instance_type: str, override: float | None) -> float:
    if override is not None:
        return override
    if instance_type not in PRICES_PER_HOUR:
        raise SystemExit(f"no price for {instance_type}; known: {', '.join(PRICES_PER_HOUR)}; or --price-per-hour")
    return PRICES_PER_HOUR[instance_type]


def dollars_per_million(images_per_second: float, dollars_per_hour: float) -> float:
    return round(dollars_per_hour / (images_per_second * 3600) * 1_000_000, 2) if images_per_second else 0.0
