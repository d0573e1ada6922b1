"""Log setup shared by every process: text lines (default) or one JSON object per line.

``AMSRM_LOG_FORMAT=json`` is for log shippers (Loki, Elasticsearch, Cloud Logging): each
line is ``{"time", "level", "logger", "message", "process", ...}`` plus ``exc_info``
when an exception is logged.  The Faust worker gets the same formatter through its
``logging_config`` (streams.worker.app), the collector and the retrain through ``configure``.
"""

from __future__ import annotations

import logging
import logging.config
import os
import time
from typing import Any

import orjson

from amsrm.errors import ConfigError
from amsrm.settings import StreamSettings

TEXT_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "process": os.getpid(), "thread": record.threadName,
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(settings: StreamSettings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for these settings (also Faust's ``logging_config``)."""
    if settings.log_format not in FORMATS:
        raise ConfigError(f"AMSRM_LOG_FORMAT must be one of {FORMATS}, got {settings.log_format!r}")
    formatter = {"()": JsonFormatter} if settings.log_format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"amsrm": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "amsrm",
                                 "stream": "ext://sys.stderr"}},
        "root": {"level": settings.log_level.upper(), "handlers": ["default"]},
    }


def configure(settings: StreamSettings) -> None:
    logging.config.dictConfig(logging_config(settings))
