"""``python -m pipeline`` is the ``triage`` command."""

from pipeline.cli import main

main()
