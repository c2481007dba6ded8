"""SQLAlchemy 2.x models, one module per aggregate; importing this package registers them all."""
from .base import Base, UTCDateTime
from .campaign import STAGE_ORDER, Campaign, Link, Stage, Step, Topic
from .delivery import Delivery, DeliveryStatus
from .enrollment import Enrollment, EnrollmentState, StepSkip
from .event import Event, EventKind
from .handoff import Handoff, HandoffAction, HandoffAssignment, HandoffState, WebhookDelivery
from .imports import ImportJob, ImportRowResult
from .knowledge import LEVEL_RANK, Knowledge, KnowledgeEvidence, KnowledgeLevel
from .lead import NO_SEND_STATUSES, QUALIFICATION_ATTRIBUTES, Lead, LeadStatus
from .report import EngagedLeadMonth, ReportWatermark, StepDayCount, TopicDayCount
from .sales import SalesRep, Territory
from .score import LeadScore
from .suppression import ALL_EMAIL, Suppression, SuppressionRemoval
from .user import ApiToken, Role, User

__all__ = [
    "Base", "UTCDateTime", "Campaign", "Link", "Stage", "STAGE_ORDER", "Step", "Topic",
    "Delivery", "DeliveryStatus", "Enrollment", "EnrollmentState", "StepSkip", "Event",
    "EventKind", "Knowledge", "KnowledgeEvidence", "KnowledgeLevel", "LEVEL_RANK", "Lead",
    "LeadStatus", "NO_SEND_STATUSES", "QUALIFICATION_ATTRIBUTES", "ALL_EMAIL", "Suppression", "SuppressionRemoval",
    "Handoff", "HandoffAction", "HandoffAssignment", "HandoffState", "WebhookDelivery", "ImportJob",
    "ImportRowResult", "EngagedLeadMonth", "ReportWatermark", "StepDayCount", "TopicDayCount", "SalesRep", "Territory", "LeadScore", "ApiToken", "Role", "User",
]
