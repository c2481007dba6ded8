"""Pure domain logic: content-gap selection, send windows, journey preview. No I/O."""
from .gaps import Decision, Skip, after_delivery, choose_next_step
from .journey import Journey, PlannedTouch, preview_journey
from .plan import CampaignPlan, Level, SendWindow, StepPlan
from .schedule import in_window, next_in_window, zone

__all__ = [
    "CampaignPlan", "Decision", "Journey", "Level", "PlannedTouch", "SendWindow", "Skip",
    "StepPlan", "after_delivery", "choose_next_step", "in_window", "next_in_window",
    "preview_journey", "zone",
]
