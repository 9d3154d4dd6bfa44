"""Actors: each owns its state and is reached only through its mailbox."""

from engage.actors.content import (ApproveComment, ContentActor, ContentDirectory,
                                   DeleteComment, DeleteUserComments, EditComment, GetCounts,
                                   HideComment, Interact, PostComment, RejectComment,
                                   RestoreComment)
from engage.actors.flush import FlushActor, FlushNow, SweeperActor, SweepNow, apply_batch
from engage.actors.mirror import Apply, Hydrate, MirrorActor, ReadCounts
from engage.actors.ref import DEFAULT_ASK_TIMEOUT, ActorRef, Callback, Envelope, Mailbox, Reply

__all__ = [
    "DEFAULT_ASK_TIMEOUT", "ActorRef", "Apply", "ContentActor", "ContentDirectory", "DeleteComment",
    "EditComment", "Envelope", "PostComment", "ApproveComment", "RejectComment", "HideComment",
    "RestoreComment", "DeleteUserComments",
    "FlushActor", "FlushNow", "GetCounts", "Hydrate", "Interact", "Mailbox", "MirrorActor",
    "ReadCounts", "Reply", "Callback", "SweepNow", "SweeperActor", "apply_batch",
]
