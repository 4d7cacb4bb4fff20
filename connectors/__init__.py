"""Connectors turn a source (X, Reddit, files, webhooks) into ``Post`` records on ``posts.raw``."""
