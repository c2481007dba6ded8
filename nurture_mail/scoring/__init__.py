"""Fit and engagement scores with explained breakdowns, and the per-campaign handoff rule.

- ``rules``: ``campaigns/scoring.yaml`` and campaign ``handoff:`` blocks, validated, cached by mtime;
- ``service``: ``rescore_leads`` and ``decide_handoffs`` over a batch of leads;
- ``pipeline``: ``after_events``, what the worker runs after new events are stored.

The arithmetic itself is pure and lives in ``nurture_mail/engine/scoring.py``.
"""
