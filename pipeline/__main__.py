"""``python -m pipeline`` is the ``triage`` command."""

from pipeline.cli.main import main

main()
