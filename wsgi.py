"""WSGI entry point: ``gunicorn wsgi:app``."""
from nurture_mail import create_app

app = create_app()
