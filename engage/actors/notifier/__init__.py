"""The notifier: turns the event log into per-user notifications."""

from engage.actors.notifier.actor import NOTIFIER_GROUP, NotifierActor
from engage.actors.notifier.messages import GetNotifierStatistics

__all__ = ["NOTIFIER_GROUP", "GetNotifierStatistics", "NotifierActor"]
