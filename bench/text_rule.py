"""What the guard's text rule (api/text_rule.py) costs a request: the walk
over a metered call's request and a larger one, in microseconds, next to
decoding the same request (which every call pays already).

    .venv/bin/python bench/text_rule.py
"""

import functools
import timeit
from collections.abc import Callable

from billing.v1 import plan_pb2, usage_pb2
from google.type import decimal_pb2

from billing_service.api.text_rule import refuse_control_characters

REQUESTS = {
    "ConsumeQuota": usage_pb2.ConsumeQuotaRequest(
        user_id="tenant-42",
        primitive="seo",
        quantity_decimal=decimal_pb2.Decimal(value="1.5"),
        idempotency_key="call-7f3a9c",
    ),
    "UpsertPlan (10 quotas)": plan_pb2.UpsertPlanRequest(
        key="pro", name="Pro", quotas={f"primitive_{i}": i for i in range(10)}
    ),
}


def _microseconds(run: Callable[[], object], number: int = 100_000) -> float:
    return min(timeit.repeat(run, number=number)) / number * 1e6


def main() -> None:
    for name, request in REQUESTS.items():
        data = request.SerializeToString()
        walk = _microseconds(functools.partial(refuse_control_characters, request))
        decode = _microseconds(functools.partial(type(request).FromString, data))
        print(f"{name}: walk {walk:.2f} us, decode {decode:.2f} us")


if __name__ == "__main__":
    main()
