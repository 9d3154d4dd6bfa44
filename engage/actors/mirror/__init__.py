from engage.actors.mirror.actor import MirrorActor
from engage.actors.mirror.messages import Apply, Hydrate, PublishCounts, ReadCounts

__all__ = ["Apply", "Hydrate", "MirrorActor", "PublishCounts", "ReadCounts"]
