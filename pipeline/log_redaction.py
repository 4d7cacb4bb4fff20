"""Logs never carry customers' e-mail addresses, phone or card numbers, nor our secrets.

Redaction happens where a log record is made (a record factory), not in one handler, so it holds
for every logger and every handler, libraries' included, and for exception text too. The rules are
the ones the triager uses to redact what marketing sees (``classifiers.entities``). The CLI entry
point installs it; ``cli.settings()`` adds the configured secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from classifiers.entities import EntityExtractor, redact

SECRET = "[SECRET]"
_extractor = EntityExtractor()
_secrets: set[str] = set()


def scrub(text: str) -> str:
    """The text with PII replaced by its kind and every known secret by ``[SECRET]``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, SECRET)
    return redact(text, _extractor.extract(text))


def secret_values(settings: Any) -> list[str]:
    """Every ``SecretStr`` setting's value, and the password inside a URI-valued one."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            plain = value.get_secret_value()
            values.append(plain)
            password = urlsplit(plain).password if "://" in plain else None
            if password:
                values.append(password)
    return values


def install(secrets: Iterable[str] = ()) -> None:
    """Redact every log record made from now on in this process; safe to call again."""
    _secrets.update(s for s in secrets if len(s) >= 4)
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
