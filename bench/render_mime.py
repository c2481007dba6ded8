#!/usr/bin/env python
"""Render and MIME per email, in process: a full Jinja render and base64 bodies against the
step's slot plans and quoted-printable pieces (``mail/slots.py``), interleaved.

The same N claimed deliveries of the bench campaign (``bench/campaigns/bench.yaml``), their
template contexts made beforehand (tokens are not measured here: ``bench/tokens.py``), then
per round, in turn:

- *full render*: ``Renderer.render`` (subject, HTML and text through the compiled templates)
  and ``build_message`` with base64 bodies: how every nurture email was made before slot plans;
- *slot plans*: ``Renderer.render_step`` (the step's plans filled, bodies quoted-printable) and
  ``build_message``: how the send path makes them now.

CPU µs per email (``process_time``), every round and the medians, with ``uptime``.

    .venv/bin/python bench/render_mime.py [-n 2000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from harness import free_port  # noqa: E402
from send_pipeline import build  # noqa: E402
from sqlalchemy import select  # noqa: E402

from nurture_mail.mail.compose import outgoing_email  # noqa: E402
from nurture_mail.mail.mime import build_message  # noqa: E402
from nurture_mail.models import Delivery  # noqa: E402
from nurture_mail.nurture.send import default_composer, load_items  # noqa: E402
from nurture_mail.nurture.tick import run_tick  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="emails per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args()
    print(f"uptime before: {os.popen('uptime').read().strip()}")
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp:
        app, svc, clock = build(Path(tmp), free_port(), args.n)
        with app.app_context():
            run_tick(svc, clock.now(), enqueue=False)
            composer = default_composer(svc)
            with svc.db.Session() as session:
                items = load_items(session, list(session.scalars(select(Delivery.id).order_by(Delivery.id))))
            renderer, now, config = composer.renderer, clock.now(), svc.config
            work = []
            for item in items:
                step, campaign = item.step, item.step.campaign
                context = composer.context(item, item.lead, step, campaign)
                key = (campaign.slug, campaign.name, step.key, step.subject, step.preheader, composer.sender)
                work.append((item, step, context, key, f"<d{item.id}.bench@nurture.example>"))

            def full_render() -> None:
                for item, step, context, _, message_id in work:
                    subject, html, text = renderer.render(step.html_template, step.text_template, step.subject, context)
                    build_message(outgoing_email(config, to_addr=item.lead.email, to_name=context["lead"].name,
                                                 subject=subject, html=html, text=text, message_id=message_id,
                                                 date=now))

            def slot_plans() -> None:
                for item, step, context, key, message_id in work:
                    made = renderer.render_step(step.html_template, step.text_template, step.subject, context, key)
                    build_message(outgoing_email(config, to_addr=item.lead.email, to_name=context["lead"].name,
                                                 subject=made.subject, html=made.html, text=made.text,
                                                 message_id=message_id, date=now, text_qp=made.text_qp,
                                                 html_qp=made.html_qp))

            runs: dict[str, list[float]] = {"full render, base64": [], "slot plans, quoted-printable": []}
            slot_plans()  # plans laid out and checked once, as a worker's first batch does
            full_render()
            for round_ in range(1, args.rounds + 1):
                for label, run in zip(runs, (full_render, slot_plans)):
                    started = time.process_time()
                    run()
                    runs[label].append((time.process_time() - started) / len(work) * 1e6)
                print(f"round {round_}: " + ", ".join(f"{label} {v[-1]:.1f} µs" for label, v in runs.items()),
                      flush=True)
        svc.close()
    medians = {label: statistics.median(v) for label, v in runs.items()}
    print(f"\nmedians over {args.rounds} rounds, CPU µs per email (uptime after: {os.popen('uptime').read().strip()}):")
    for label, value in medians.items():
        print(f"  {label:<30} {value:7.1f}")
    full, plans = medians.values()
    print(f"  slot plans cost {plans / full:.2f} of the full render")


if __name__ == "__main__":
    main()
