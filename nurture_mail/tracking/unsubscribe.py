"""Unsubscribe endpoints (to be built)."""
from flask import Blueprint

bp = Blueprint("unsubscribe", __name__)
