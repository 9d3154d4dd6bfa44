from engage.actors.content.actor import ContentActor
from engage.actors.content.directory import ContentDirectory
from engage.actors.content.messages import (DeleteComment, EditComment, GetCounts, Interact,
                                            PostComment)

__all__ = ["ContentActor", "ContentDirectory", "DeleteComment", "EditComment", "GetCounts",
           "Interact", "PostComment"]
