"""One quiet line for a pull fetch that ran out of time, instead of an ERROR with a traceback.

nats-py's `fetch` raises the built-in `TimeoutError` when its deadline passes between its two pull
requests (a busy event loop gets there late), while FastStream's pull loop only expects nats-py's
own `nats.errors.TimeoutError`. The loop's supervisor then logs the task's exception at ERROR with
a traceback and starts the loop again: nothing is lost (the messages stay in the consumer), but an
operator reading ERROR lines would chase it. The restart stays; only the record changes.
"""

from __future__ import annotations

import logging

RESTARTED = "raised an exception, retrying"


class FetchTimeouts(logging.Filter):
    """Turns FastStream's "raised an exception, retrying" record about a `TimeoutError` into a
    one-line WARNING; every other record passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TimeoutError) and RESTARTED in record.getMessage():
            task = record.getMessage().split(" ", 1)[0]
            record.msg, record.args = "pull fetch timed out (%s); the fetch loop starts again", (task,)
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.exc_info, record.exc_text = None, None
        return True
