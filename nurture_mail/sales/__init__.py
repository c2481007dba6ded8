"""Sales handoff: routing, dossier, notifications, sales actions, SLA and ownership.

The pages behind a notification's signed links are a face: ``web/sales_links.py``.
"""
