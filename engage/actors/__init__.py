"""Actors: each owns its state and is reached only through its mailbox."""

from engage.actors.content import (ContentActor, ContentDirectory, DeleteComment, EditComment,
                                   GetCounts, Interact, PostComment)
from engage.actors.flush import FlushActor, FlushNow, SweeperActor, SweepNow, apply_batch
from engage.actors.mirror import Apply, Hydrate, MirrorActor, ReadCounts
from engage.actors.ref import DEFAULT_ASK_TIMEOUT, ActorRef, Callback, Envelope, Mailbox, Reply

__all__ = [
    "DEFAULT_ASK_TIMEOUT", "ActorRef", "Apply", "ContentActor", "ContentDirectory", "DeleteComment",
    "EditComment", "Envelope", "PostComment",
    "FlushActor", "FlushNow", "GetCounts", "Hydrate", "Interact", "Mailbox", "MirrorActor",
    "ReadCounts", "Reply", "Callback", "SweepNow", "SweeperActor", "apply_batch",
]
