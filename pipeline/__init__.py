"""The triage pipeline: records, bus, store, worker and the ``triage`` command."""
