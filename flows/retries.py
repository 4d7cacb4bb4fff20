"""When a flow's task is worth retrying: only for service hiccups (``TransientError``).

A bad setting or a bad file fails the same way every time, so it fails the run at once with its
one-line message; an unreachable broker or store gets a few more tries with a delay.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import TransientError

RETRIES = 2
RETRY_DELAY_S: list[float] = [5.0, 30.0]


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False
