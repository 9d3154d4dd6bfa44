from engage.actors.content.actor import ContentActor
from engage.actors.content.directory import ContentDirectory
from engage.actors.content.messages import GetCounts, Interact

__all__ = ["ContentActor", "ContentDirectory", "GetCounts", "Interact"]
