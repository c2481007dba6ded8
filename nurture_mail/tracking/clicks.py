"""Click and open endpoints (to be built)."""
from flask import Blueprint

bp = Blueprint("clicks", __name__)
