from engage.actors.presence.actor import PresenceActor
from engage.actors.presence.messages import LocalCount

__all__ = ["LocalCount", "PresenceActor"]
