"""ShouldRateLimit: Envoy's sidecars enforcing plan quotas.

Each descriptor names an owner (`user_id` or `tenant_id`, its older name, or
`organization_id`) and a
`primitive`; it is decided as a ConsumeQuota of `hits_addend` units (the
descriptor's own, else the request's; 0 means 1). A request's descriptors
are all counted or, when one is over its limit, none. A descriptor without
an owner and a primitive is not metered (OK, no limit), as Envoy's own
service answers descriptors it has no rule for. An entry `request_id`
makes the request idempotent: a retry with the same id and the same
metered descriptors is counted once; the id reused for other descriptors
(or other hits) is IDEMPOTENCY_KEY_REUSED, the call's error (ALREADY_EXISTS).
The operator is the one whose key the sidecar sends in `authorization`;
the domain is not interpreted. docs/envoy.md has a complete configuration.
"""

from datetime import datetime, timedelta
from typing import Any

from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import duration_pb2

from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import DomainError, IdempotencyKeyReused
from ..domain.models import QuotaDecision, Standing, UsageRecorded, Window
from ..domain.owners import Owner
from ..domain.quantities import whole
from ..metering.quota_engine import QuotaEngine
from .guard import current_operator

# xds-protos ships no type stubs: Envoy's messages are Any here.
Response: Any = rls_pb2.RateLimitResponse
OWNER_KEYS = ("tenant_id", "user_id", "organization_id")
PRIMITIVE_KEY = "primitive"
REQUEST_ID_KEY = "request_id"
# A period's unit, by its longest length in days (an anchored month of 28 to
# 31 days is a MONTH).
_UNITS = ((1, Response.RateLimit.DAY), (7, Response.RateLimit.WEEK), (31, Response.RateLimit.MONTH))


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, engine: QuotaEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def ShouldRateLimit(self, request: Any, context: Any) -> Any:
        request_id = _request_id(request.descriptors)
        metered: list[tuple[int, tuple[Owner, str, int, str]]] = []
        for index, descriptor in enumerate(request.descriptors):
            entries = {entry.key: entry.value for entry in descriptor.entries}
            primitive = entries.get(PRIMITIVE_KEY)
            if primitive is None or not any(k in entries for k in OWNER_KEYS):
                continue
            owner = v.owner(*(entries.get(k, "") for k in OWNER_KEYS))
            hits = _hits(descriptor, request.hits_addend)
            # Numbered among the metered descriptors: every retry of the
            # request finds its first one's key, whichever it meters.
            idem = f"envoy:{request_id}:{len(metered)}" if request_id else ""
            metered.append((index, (owner, primitive, hits, idem)))
        statuses = [Response.DescriptorStatus(code=Response.OK) for _ in request.descriptors]
        if metered:
            result = await self._engine.consume_all(current_operator(), [m for _, m in metered])
            for answer in result.answers.values():
                if isinstance(answer, IdempotencyKeyReused):
                    raise answer  # no decision: the request is not the one of its id
            now = self._clock.now()
            for position, (index, _) in enumerate(metered):
                answer = result.answers[position]
                standing = _standing_of(answer) or result.standings.get(position)
                statuses[index] = _status(answer, standing, now)
        over = any(status.code == Response.OVER_LIMIT for status in statuses)
        return Response(
            overall_code=Response.OVER_LIMIT if over else Response.OK, statuses=statuses
        )


def _hits(descriptor: Any, request_hits: int) -> int:
    if descriptor.HasField("hits_addend"):
        return int(descriptor.hits_addend.value) or 1
    return request_hits or 1


def _request_id(descriptors: Any) -> str:
    for descriptor in descriptors:
        for entry in descriptor.entries:
            if entry.key == REQUEST_ID_KEY and entry.value:
                return str(entry.value)
    return ""


UINT32_MAX = 2**32 - 1


def _standing_of(answer: object) -> Standing | None:
    if isinstance(answer, UsageRecorded | QuotaDecision):
        return answer.standing
    return None


def _status(answer: object, standing: Standing | None, now: datetime) -> Any:
    """A refusal is OVER_LIMIT (quota, inactive subscription, primitive not
    in the kit); anything else OK, with the limit where there is one."""
    status = Response.DescriptorStatus(
        code=Response.OVER_LIMIT if isinstance(answer, DomainError) else Response.OK
    )
    if standing is None or standing.limit is None:
        return status
    status.current_limit.CopyFrom(
        Response.RateLimit(
            requests_per_unit=_uint32(whole(standing.limit)), unit=_unit(standing.window)
        )
    )
    status.limit_remaining = _uint32(whole(standing.remaining))
    until = max(standing.window.end - now, timedelta(0))
    status.duration_until_reset.CopyFrom(duration_pb2.Duration(seconds=int(until.total_seconds())))
    return status


def _uint32(value: int) -> int:
    """Envoy's fields are 32-bit: a larger quota is shown as their largest
    value (the decision itself is exact)."""
    return min(value, UINT32_MAX)


def _unit(window: Window) -> Any:
    days = (window.end - window.start).days
    return next((unit for longest, unit in _UNITS if days <= longest), Response.RateLimit.YEAR)
