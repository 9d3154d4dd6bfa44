from engage.actors.content.actor import ContentActor
from engage.actors.content.directory import ContentDirectory
from engage.actors.content.messages import (ApproveComment, DeleteComment, DeleteUserComments,
                                            EditComment, GetCounts, HideComment, Interact,
                                            PostComment, RejectComment, RestoreComment)

__all__ = ["ApproveComment", "ContentActor", "ContentDirectory", "DeleteComment",
           "DeleteUserComments", "EditComment", "GetCounts", "HideComment", "Interact",
           "PostComment", "RejectComment", "RestoreComment"]
