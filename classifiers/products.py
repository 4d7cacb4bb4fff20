"""The brand's product names, which the entity extractor finds in posts: configuration, not code.

A brand lists them in a plain text file, one name a line (``TRIAGE_PRODUCTS_FILE``; the demo
brand's list is ``connectors/samples/demo_products.txt``), so a new product is a line in a file,
reviewed like any other setting, rather than a release.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError

DEMO_PRODUCTS = Path(__file__).resolve().parents[1] / "connectors" / "samples" / "demo_products.txt"


def load_products(path: Path | None) -> tuple[str, ...]:
    """The names in ``path`` (blank lines and ``#`` comments skipped, each name once); none
    without a file."""
    if path is None:
        return ()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"products file {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    names = (line.strip() for line in lines)
    return tuple(dict.fromkeys(n for n in names if n and not n.startswith("#")))
