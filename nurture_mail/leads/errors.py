"""Errors of the lead import, each naming the field (or option) that is wrong."""
from __future__ import annotations


class ImportOptionsError(ValueError):
    """The file or an option of an import cannot be used at all (nothing was imported).

    ``field`` is the option at fault (``file``, ``mapping``, ``campaign_slug``, ``lead_source``);
    ``message`` says what is wrong without it; ``str()`` is ``"<field>: <message>"``.
    """

    def __init__(self, message: str, field: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class LeadValueError(ValueError):
    """One value of a lead cannot be used (``employees: not a whole number ('lots')``)."""

    def __init__(self, message: str, field: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ImportStateError(ValueError):
    """An import cannot be resumed in the state it is in (done, being run, its file gone)."""

    def __init__(self, message: str, field: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class LeadControlError(LeadValueError):
    """A control character (CR, LF, NUL, another C0 or DEL) in a one-line field: the whole lead is
    refused (an API 422, an import row ``rejected``), since such a value would break the email
    headers it reaches (``To:`` names, subjects) at every send."""
