"""A service as `minyi serve NAME` runs it, under cProfile with a CPU-time clock.

    .venv/bin/python bench/profile_service.py OUT NAME

The statistics are written to OUT when the process gets SIGTERM (uvicorn finishes its requests and
raises the signal again once it has stopped). Read them with `python -m pstats OUT`. Coroutines and
SQLAlchemy's greenlets make cumulative times unreliable (a frame is counted once per resumption,
and whatever runs while a greenlet is switched out is charged to it); the time spent in each
function itself (`tottime`) is sound. `bench/intake_submit.py --profile OUT` starts intake this way.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import time
from types import FrameType

from minyi.cli import main


def run(out: str, name: str) -> None:
    # CPU time, not wall time: on a shared machine the wall clock also counts other processes' turns.
    profile = cProfile.Profile(time.process_time)

    def dump(signum: int = 0, frame: FrameType | None = None) -> None:
        profile.disable()
        profile.dump_stats(out)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    profile.enable()
    main(["serve", name])
    dump()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run(sys.argv[1], sys.argv[2])
