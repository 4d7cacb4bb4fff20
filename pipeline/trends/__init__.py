"""Trends: the streaming spike detector, incidents made of spikes, the report for marketing."""
