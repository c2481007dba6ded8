"""Lead intake: CSV import with row-by-row outcomes."""
