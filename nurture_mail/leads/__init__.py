"""Lead intake: CSV import as a job with a row-by-row report, create-or-update by email, hygiene.

- ``imports``: create / enqueue / run an import job, its progress and its report (``docs/import.md``);
- ``upsert``: one lead by email (the API), with the same merge policy (``merge``) and hygiene;
- ``hygiene``: address normalization and the flags that keep a lead from nurture and sales;
- ``csvfile`` / ``fields``: reading files as people export them, and turning cells into values;
- ``regions``: a country to its sales region (``Lead.region``: AMER, EMEA, APAC);
- ``batch``: the chunked engine all of them share; ``importer``: the in-session entry point.
"""
