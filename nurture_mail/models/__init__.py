"""SQLAlchemy 2.x models, one module per aggregate; importing this package registers them all."""
from .base import Base, UTCDateTime
from .campaign import STAGE_ORDER, Campaign, Link, Stage, Step, Topic
from .delivery import Delivery, DeliveryStatus
from .enrollment import Enrollment, EnrollmentState, StepSkip
from .event import Event, EventKind
from .knowledge import LEVEL_RANK, Knowledge, KnowledgeEvidence, KnowledgeLevel
from .lead import NO_SEND_STATUSES, QUALIFICATION_ATTRIBUTES, Lead, LeadStatus
from .suppression import ALL_EMAIL, Suppression

__all__ = [
    "Base", "UTCDateTime", "Campaign", "Link", "Stage", "STAGE_ORDER", "Step", "Topic",
    "Delivery", "DeliveryStatus", "Enrollment", "EnrollmentState", "StepSkip", "Event",
    "EventKind", "Knowledge", "KnowledgeEvidence", "KnowledgeLevel", "LEVEL_RANK", "Lead",
    "LeadStatus", "NO_SEND_STATUSES", "QUALIFICATION_ATTRIBUTES", "ALL_EMAIL", "Suppression",
]
