"""Campaign definitions: loading and validating ``campaigns/*.yaml``, syncing them into the models."""
from .loader import CampaignLoader, parse_duration
from .spec import CampaignSpec, LinkSpec, StepSpec, TopicSpec
from .sync import SyncResult, sync_all, sync_campaign

__all__ = [
    "CampaignLoader", "CampaignSpec", "LinkSpec", "StepSpec", "SyncResult", "TopicSpec",
    "parse_duration", "sync_all", "sync_campaign",
]
