"""What a decision of the metering core came to, as the metrics count it:
`admitted`, or the reason of a refusal (a DenialReason's value). Bad input
and storage trouble decide nothing, and are not counted here."""

from ..domain.errors import PrimitiveNotPermitted, QuotaExceeded, SubscriptionInactive
from ..domain.models import DenialReason, QuotaDecision, UsageRecorded
from .batch import Answer, BatchResult

ADMITTED = "admitted"
_REFUSALS = (
    (QuotaExceeded, DenialReason.QUOTA_EXCEEDED),
    (SubscriptionInactive, DenialReason.SUBSCRIPTION_INACTIVE),
    (PrimitiveNotPermitted, DenialReason.PRIMITIVE_NOT_PERMITTED),
)


def outcome(answer: Answer | Exception) -> str | None:
    """A check's decision, a consumption recorded or refused; None when the
    answer is no decision."""
    if isinstance(answer, QuotaDecision):
        return ADMITTED if answer.allowed else str(answer.reason)
    if isinstance(answer, UsageRecorded):
        return ADMITTED
    for refusal, reason in _REFUSALS:
        if isinstance(answer, refusal):
            return reason.value
    return None


def group_outcome(result: BatchResult) -> str | None:
    """Calls stored all or none (Envoy's descriptors of one request) are one
    decision: admitted when every call was stored, else the first refusal's."""
    answers = [result.answers[index] for index in sorted(result.answers)]
    for answer in answers:
        if not isinstance(answer, QuotaDecision | UsageRecorded):
            return outcome(answer)
    stored = answers and all(isinstance(answer, UsageRecorded) for answer in answers)
    return ADMITTED if stored else None
