"""Anthropic's Messages API (``/v1/messages``): a thin protocol layer over the one engine."""
