"""Fit and engagement scores with explained breakdowns, and the per-campaign handoff rule."""
