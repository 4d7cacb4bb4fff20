"""The triage pipeline: records and settings (the spine), the worker, a sub-package a concern."""
