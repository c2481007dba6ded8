"""Every page renders for the admin, on an empty and a populated database."""
from __future__ import annotations

from support.sales import hand_off

from .conftest import FIT, sign_in


def test_every_page_renders(users):
    platform = users
    platform.add_lead("nora@quinn.example", **FIT)
    platform.enroll("nora@quinn.example")
    platform.tick_and_work()
    handoff_id = hand_off(platform, "nora@quinn.example")
    client = sign_in(platform.app.test_client(), "admin@northwind.example")
    for path in ["/handoffs/", "/handoffs/?state=all&scope=all", f"/handoffs/{handoff_id}", "/handoffs/team",
                 "/sales/nurture", "/reports/", *(f"/reports/{n}" for n in
                 ("campaigns", "steps", "topics", "closure", "reps", "forecast", "monthly"))]:
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:3000])
        response = client.get(path.rstrip("/") + ".csv") if path.startswith("/reports/") and path != "/reports/" else None
        if response is not None:
            assert response.status_code == 200 and response.mimetype == "text/csv", path
