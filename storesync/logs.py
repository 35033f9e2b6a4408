"""Logging: readable lines by default, one JSON object per line with ``--log-json``.

A redaction filter scrubs anything shaped like a credential (Shopify tokens, Klaviyo keys,
storesync API tokens, bearer headers) from every record, as a second line of defence: the code
never logs credentials on purpose.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_SECRET = re.compile(
    r"(shp(?:at|ca|pa|ss)_[A-Za-z0-9]+|pk_[A-Za-z0-9_]{6,}|sst_[A-Za-z0-9_\-]{10,}"
    r"|(?i:bearer|klaviyo-api-key)\s+[A-Za-z0-9_\-\.]+)"
)


def redact(text: str) -> str:
    """``text`` with anything credential-shaped replaced by ``[redacted]``."""
    return _SECRET.sub("[redacted]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("job_id", "store_id", "worker_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


def configure(*, json_lines: bool = False, level: str = "INFO") -> None:
    """Send storesync's logs to stderr, redacted, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; keep that out of the way.
    logging.getLogger("httpx").setLevel(logging.WARNING)
