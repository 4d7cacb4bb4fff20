"""How the long-running commands log: one line a record, as text or as JSON for log shippers.

``TRIAGE_LOG_FORMAT=json`` writes one JSON object a line (``time``, ``level``, ``logger``,
``message``, plus the fields a record was given with ``extra=``), which Loki, Elasticsearch and
CloudWatch read without a parsing rule. Text is for people at a terminal. Either way a record is
one line: a message is never wrapped, whatever the terminal's width (the worker's batch lines are
grepped).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pipeline.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# LogRecord's own attributes: everything else on a record came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """INFO and up to stderr, in the configured format; the Kafka client at its own level."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("kafka").setLevel(settings.kafka_log_level)
