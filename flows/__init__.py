"""Prefect flows that operators run and schedule: ingest, retrain, reports, watchdog, replay."""
