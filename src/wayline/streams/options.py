"""What a worker is given (``WorkerOptions``) and what it reports (``WorkerStats``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wayline.streams.failure import FailureLimits
from wayline.streams.task import ClockMode


@dataclass
class WorkerStats:
    """Counters of one worker; ``Worker.stats()`` returns a copy."""

    events_in: int = 0
    events_out: int = 0
    dead_lettered: int = 0
    skipped_applied: int = 0
    timers_fired: int = 0
    timers_pending: int = 0
    store_keys: int = 0
    restored_records: int = 0
    restore_seconds: float = 0.0
    restore_cpu_seconds: float = 0.0  # of this worker's thread: opening stores, reading logs
    lag: int = 0
    stalls: int = 0
    retries: int = 0  # batches retried after a broker fault
    retrying: str = ""  # the broker fault being waited out now
    stalled: bool = False
    consumers_renewed: int = 0  # consumers replaced: their group coordinator was lost
    batches: int = 0
    commits: int = 0
    last_commit_at: float | None = None
    assigned: list[str] = field(default_factory=list)
    steps: dict[str, int] = field(default_factory=dict)  # the step chain's own counters


@dataclass(frozen=True)
class WorkerOptions:
    batch_size: int = 500
    poll_timeout_s: float = 0.05
    stats_interval_s: float = 10.0
    stall_after_s: float = 30.0
    consumer_overrides: dict[str, object] = field(default_factory=dict)
    state_dir: Path = Path("wayline-data") / "state"
    clock: ClockMode = "live"
    grace_ms: int = 0
    failure_limits: FailureLimits = field(default_factory=FailureLimits)
    coordinator_lost_after_s: float = 30.0  # then a new consumer, if the cluster answers
