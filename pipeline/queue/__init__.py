"""The agent queue: claims under leases, routing, SLA, escalation policy, customers, KPIs."""
