"""The ``triage`` command: its sub-commands, the Prefect flow commands and ``triage demo``."""
