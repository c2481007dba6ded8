"""Fixtures and helpers shared by several test folders: the platform, the sales team, browser,
and reading the emails a real SMTP server received. Registered as plugins in ``tests/conftest.py``;
helpers are imported from here (``from support.sales import hand_off``)."""
