"""Tiny random-weight models in real diffusers layout, for offline tests (see ``tiny``)."""
