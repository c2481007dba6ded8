"""The driver-level writer stores exactly what SQLAlchemy Core stores, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, update

from nurture_mail.leads.bulk import Bulk
from nurture_mail.models import Enrollment, EnrollmentState, Lead, LeadStatus

NOW = datetime(2026, 3, 2, 14, 0, 12, 345678, tzinfo=timezone.utc)
LEAD_COLUMNS = [c.name for c in Lead.__table__.columns if c.name != "id"]


def _lead(email: str, n: int) -> dict:
    return {
        "email": email, "first_name": "Zoë" if n % 2 else None, "last_name": "O'Hara", "title": None,
        "company": "Acme, Inc.", "lead_source": "expo", "timezone": "Europe/Paris" if n % 3 else None,
        "consent": bool(n % 2), "industry_sic": "7372", "industry_naics": None, "revenue": 2**40 + n,
        "employees": n, "locations": None, "region": "EMEA",
        "qualification": {"budget": "approved Q3"} if n % 2 else {},
        "custom_fields": {"country": "Deutschland", "booth_notes": "met \"at\" booth 12", "n": n},
        "status": LeadStatus.new if n % 2 else LeadStatus.recycled, "soft_bounces": 0,
        "hygiene": ["role_account"] if n % 4 == 0 else [], "erased_at": None if n % 5 else NOW,
        "created_at": NOW, "updated_at": NOW + timedelta(seconds=n),
    }


def _raw(session, table: str, where: str) -> list[tuple]:
    """Rows as the driver returns them (no SQLAlchemy type processing), without their ids."""
    rows = session.connection().exec_driver_sql(f"SELECT * FROM {table} WHERE {where} ORDER BY id").all()
    return [tuple(r)[1:] for r in rows]


def test_inserted_and_updated_rows_are_the_ones_core_writes(bed):
    db = bed.svc.db
    with db.session() as session:
        core = [_lead(f"core{n}@acme.example", n) for n in range(7)]
        session.execute(insert(Lead.__table__), core)
        fast = [_lead(f"fast{n}@acme.example", n) for n in range(7)]
        returned = Bulk(session).insert(Lead.__table__, LEAD_COLUMNS, [tuple(r[c] for c in LEAD_COLUMNS) for r in fast],
                                        on_conflict_do_nothing=["email"], returning=["id", "email"])
        assert sorted(e for _id, e in returned) == sorted(r["email"] for r in fast)
        a = [r[1:] for r in _raw(session, "lead", "substr(email, 1, 4) = 'core'")]
        b = [r[1:] for r in _raw(session, "lead", "substr(email, 1, 4) = 'fast'")]
        assert a == b
        # A conflicting row is skipped and returns nothing.
        again = Bulk(session).insert(Lead.__table__, LEAD_COLUMNS, [tuple(fast[0][c] for c in LEAD_COLUMNS)],
                                     on_conflict_do_nothing=["email"], returning=["id", "email"])
        assert again == []

        ids = {e: i for i, e in session.execute(select(Lead.id, Lead.email))}
        changes = {"first_name": "Ann", "custom_fields": {"x": "ü"}, "hygiene": ["deny:student"],
                   "updated_at": NOW + timedelta(days=1)}
        for n in range(3):
            table = Lead.__table__
            session.execute(update(table).where(table.c.id == ids[f"core{n}@acme.example"]).values(**changes))
        Bulk(session).update(Lead.__table__, "id", list(changes),
                             [(ids[f"fast{n}@acme.example"], *changes.values()) for n in range(3)])
        Bulk(session).update_where_in(Lead.__table__, "id", [ids[f"fast{n}@acme.example"] for n in range(7)],
                                      {"status": LeadStatus.nurturing, "updated_at": NOW},
                                      only_if=("status", [LeadStatus.new]))
        session.execute(update(Lead).where(Lead.email.like("core%"), Lead.status == LeadStatus.new)
                        .values(status=LeadStatus.nurturing, updated_at=NOW))
        assert [r[1:] for r in _raw(session, "lead", "substr(email, 1, 4) = 'core'")] == \
            [r[1:] for r in _raw(session, "lead", "substr(email, 1, 4) = 'fast'")]
        # And SQLAlchemy reads them back as it wrote them.
        lead = session.scalar(select(Lead).where(Lead.email == "fast1@acme.example"))
        assert (lead.first_name, lead.custom_fields, lead.hygiene, lead.status) == \
            ("Ann", {"x": "ü"}, ["deny:student"], LeadStatus.nurturing)
        assert lead.updated_at == NOW

        campaign_id = session.connection().exec_driver_sql("SELECT min(id) FROM campaign").scalar()
        enrollment = {"campaign_id": campaign_id, "state": EnrollmentState.active, "next_send_at": NOW,
                      "enrolled_at": NOW, "touches_sent": 0, "enrolled_by": "import:expo"}
        session.execute(insert(Enrollment.__table__), [{**enrollment, "lead_id": ids[f"core{n}@acme.example"]}
                                                       for n in range(4)])
        names = ["lead_id", *enrollment]
        got = Bulk(session).insert(Enrollment.__table__, names,
                                   [(ids[f"fast{n}@acme.example"], *enrollment.values()) for n in range(4)],
                                   on_conflict_do_nothing=["lead_id", "campaign_id"], returning=["id", "lead_id"])
        assert len(got) == 4
        core_rows = _raw(session, "enrollment", f"lead_id IN ({', '.join(str(ids[f'core{n}@acme.example']) for n in range(4))})")
        fast_rows = _raw(session, "enrollment", f"lead_id IN ({', '.join(str(ids[f'fast{n}@acme.example']) for n in range(4))})")
        assert [r[1:] for r in core_rows] == [r[1:] for r in fast_rows]


def test_rows_changing_different_columns_change_only_their_own(bed):
    with bed.svc.db.session() as session:
        rows = [_lead(f"{p}{n}@acme.example", n) for p in ("core", "fast") for n in range(3)]
        session.execute(insert(Lead.__table__), rows)
        ids = {e: i for i, e in session.execute(select(Lead.id, Lead.email))}
        later = NOW + timedelta(hours=2)
        changes = [{"first_name": "Ann", "updated_at": later},
                   {"employees": 12, "custom_fields": {"x": 1}, "consent": True, "updated_at": later},
                   {"hygiene": ["suppressed"], "timezone": None, "updated_at": later}]
        table = Lead.__table__
        for n, change in enumerate(changes):
            session.execute(update(table).where(table.c.id == ids[f"core{n}@acme.example"]).values(**change))
        Bulk(session).update_changed(table, "id", [{"id": ids[f"fast{n}@acme.example"], **change}
                                                   for n, change in enumerate(changes)])
        core = [r[1:] for r in _raw(session, "lead", "substr(email, 1, 4) = 'core'")]
        fast = [r[1:] for r in _raw(session, "lead", "substr(email, 1, 4) = 'fast'")]
        assert core == fast
        assert Bulk(session).select_in(table, ["email"], "email", ["fast1@acme.example", "nobody@acme.example"]) == \
            [("fast1@acme.example",)]


def test_text_that_would_not_survive_the_joined_transport_is_stored_as_given(bed):
    """On PostgreSQL text columns travel as one separated string; what cannot is sent as an array."""
    awkward = ["", "\x1e", "a\x1fb", "\\N", "NULL", " spaced ", "ünï"]
    with bed.svc.db.session() as session:
        for n, text_ in enumerate(awkward):
            row = {**_lead(f"odd{n}@acme.example", n), "title": text_, "first_name": "" if n % 2 else None}
            Bulk(session).insert(Lead.__table__, LEAD_COLUMNS, [tuple(row[c] for c in LEAD_COLUMNS)])
        # In one statement: the title column (it holds the null mark) goes as an array, first_name joined.
        rows = [{**_lead(f"all{n}@acme.example", n), "title": t, "first_name": "" if n % 2 else None}
                for n, t in enumerate(awkward)]
        Bulk(session).insert(Lead.__table__, LEAD_COLUMNS, [tuple(r[c] for c in LEAD_COLUMNS) for r in rows])
        together = session.execute(select(Lead.title, Lead.first_name).where(Lead.email.like("all%"))
                                   .order_by(Lead.id)).all()
        assert [tuple(r) for r in together] == [(t, "" if n % 2 else None) for n, t in enumerate(awkward)]
        stored = dict(session.execute(select(Lead.email, Lead.title).where(Lead.email.like("odd%"))).all())
        firsts = dict(session.execute(select(Lead.email, Lead.first_name).where(Lead.email.like("odd%"))).all())
    assert [stored[f"odd{n}@acme.example"] for n in range(len(awkward))] == awkward
    assert [firsts[f"odd{n}@acme.example"] for n in range(len(awkward))] == ["" if n % 2 else None
                                                                            for n in range(len(awkward))]


def test_a_whole_second_is_stored_as_core_stores_it(bed):
    """SQLite: the dialect's datetime text ("….000000"), not the driver's adaptation (which drops it)."""
    whole = NOW.replace(microsecond=0)
    with bed.svc.db.session() as session:
        rows = [{**_lead(f"{p}@acme.example", 1), "created_at": whole, "updated_at": whole} for p in ("core", "fast")]
        session.execute(insert(Lead.__table__), rows[:1])
        Bulk(session).insert(Lead.__table__, LEAD_COLUMNS, [tuple(rows[1][c] for c in LEAD_COLUMNS)])
        core, fast = (_raw(session, "lead", f"email = '{p}@acme.example'")[0][1:] for p in ("core", "fast"))
    assert core == fast
