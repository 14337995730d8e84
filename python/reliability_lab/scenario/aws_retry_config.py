"""An AWS SDK retry mode running a dependency's retries inside a scenario.

``Dependency(aws_retry=AwsRetryConfig(mode="adaptive"))`` makes the dependency's retry loop the
one of botocore's ``standard`` or ``adaptive`` mode, in both engines (the shared order flow,
``cpp/rlab/model/aws_retry_call.h``): one retry quota (and in adaptive mode one send-rate
limiter) per dependency, shared by every order as one SDK client is by its callers.

- **Quota** (botocore ``retries/quota.py``, ``standard.py``): ``quota`` units (500); a retry
  costs ``retry_cost`` (5), ``timeout_cost`` (10) after a timeout; a successful call refunds
  the cost of its last retry, or ``no_retry_increment`` (1) if it needed none, never above the
  start. A retry the quota cannot pay for ends the loop as a retry budget's refusal does
  (``retry_ends["budget"]``, the order fails with reason ``budget``).
- **What is retried**: 500, 502, 503, 504, 408 and connection errors (transient), timeouts, 429
  (throttling); other statuses and generic errors are permanent. At most ``max_attempts``
  attempts, full-jitter backoff ``draw x min(base_delay x 2^(n-1), max_backoff)``.
- **Adaptive** (``retries/adaptive.py``): after the first 429 every attempt takes a token from a
  bucket whose rate a CUBIC controller sets from the measured send rate; the order sleeps for
  its token (engine time), and an attempt that would wait longer than ``max_wait`` is refused
  (counted in ``rejected_throttle``; the loop ends as after a local rejection).

It replaces ``retry`` and a retry budget (ValueError naming ``<dependency>.retry`` /
``<dependency>.budget`` when either is set too): ``rl.RetryConfig`` also configures the
standalone ``rl.Retry`` for callables, whose loop the AWS modes do not follow (use
:class:`~reliability_lab.AwsRetry` for callables). botocore's ``legacy`` mode is not modelled; a
plain ``retry=rl.RetryConfig(max_attempts=5)`` is the closest. With ``hedge``/``fanout``, quota
and send token are per round (the unit the retry loop counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reliability_lab import _schema

AwsMode = Literal["standard", "adaptive"]


@dataclass(frozen=True)
class AwsRetryConfig(_schema.Checked):
    """botocore's ``standard`` / ``adaptive`` retry mode for a scenario dependency.

    Attributes:
        mode: ``"standard"`` or ``"adaptive"``.
        max_attempts: attempts per call, the first included, in [1, 100].
        quota: the retry quota's capacity (and start), in [0, 1e9].
        retry_cost: units a retry costs, in [1, 1e9].
        timeout_cost: units a retry after a timeout costs, in [1, 1e9].
        no_retry_increment: units a success without retries refunds, in [0, 1e9].
        base_delay: seconds scaling the backoff, in (0, 1e6].
        max_backoff: cap in seconds on one backoff, in (0, 1e6].
        min_rate: adaptive: the lowest send rate per second, in (0, 1e9].
        beta: adaptive: CUBIC's multiplicative decrease, in (0, 1).
        scale_constant: adaptive: CUBIC's C, in (0, 1e9].
        smoothing: adaptive: the measured send rate's moving-average weight, in (0, 1].
        max_wait: adaptive: the longest wait in seconds for a send token, in [0, 1e6].
    """

    mode: AwsMode = "standard"
    max_attempts: int = 3
    quota: int = 500
    retry_cost: int = 5
    timeout_cost: int = 10
    no_retry_increment: int = 1
    base_delay: float = 1.0
    max_backoff: float = 20.0
    min_rate: float = 0.5
    beta: float = 0.7
    scale_constant: float = 0.4
    smoothing: float = 0.8
    max_wait: float = 60.0
