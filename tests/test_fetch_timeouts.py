"""The bus logger's filter for FastStream's restarted pull loop (shared/bus/fetch_timeouts.py)."""

from __future__ import annotations

import inspect
import logging

import pytest
from faststream._internal.endpoint.subscriber import supervisor

from shared.bus.fetch_timeouts import RESTARTED, FetchTimeouts

FASTSTREAM_LINE = (f"Task-20 {RESTARTED}...\nIf this behavior causes issues, you can disable it via setting the "
                   "FASTSTREAM_SUPERVISOR_DISABLED env to 1.")


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def bus() -> tuple[logging.Logger, Kept]:
    logger = logging.getLogger("minyi.test-fetch-timeouts.bus")
    logger.filters.clear()
    logger.handlers.clear()
    kept = Kept()
    logger.addHandler(kept)
    logger.addFilter(FetchTimeouts())
    logger.propagate = False
    return logger, kept


def test_the_installed_faststream_still_logs_the_line_the_filter_knows() -> None:
    assert RESTARTED in inspect.getsource(supervisor)


def test_a_fetch_timeout_becomes_one_warning_line(bus: tuple[logging.Logger, Kept]) -> None:
    logger, kept = bus
    logger.error(FASTSTREAM_LINE, exc_info=TimeoutError())
    [record] = kept.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "pull fetch timed out (Task-20); the fetch loop starts again"
    assert record.exc_info is None
    assert "Traceback" not in logging.Formatter().format(record)


@pytest.mark.parametrize("exc, message", [(RuntimeError("handler broke"), FASTSTREAM_LINE),
                                          (TimeoutError(), "ack timed out")])
def test_anything_else_stays_an_error_with_its_traceback(bus: tuple[logging.Logger, Kept], exc: Exception,
                                                         message: str) -> None:
    logger, kept = bus
    try:
        raise exc
    except Exception as raised:
        logger.error(message, exc_info=raised)
    [record] = kept.records
    assert record.levelno == logging.ERROR and record.getMessage() == message
    assert "Traceback" in logging.Formatter().format(record)
