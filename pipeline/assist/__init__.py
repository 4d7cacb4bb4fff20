"""Agent assist: similar cases, suggested replies, automated repeats, agents' corrections."""
