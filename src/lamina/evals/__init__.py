"""Quality evals behind ``lamina eval``: retrieval (BEIR nDCG), grounding and generation checks."""
