"""Text preparation, entity extraction and the scikit-learn models that triage a post."""
