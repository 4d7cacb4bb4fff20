"""The web app for agents, marketing and operators, served by ``triage serve``."""
