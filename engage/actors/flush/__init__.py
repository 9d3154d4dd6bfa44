from engage.actors.flush.actor import FlushActor, apply_batch
from engage.actors.flush.messages import FlushNow, SweepNow
from engage.actors.flush.sweeper import SweeperActor

__all__ = ["FlushActor", "FlushNow", "SweepNow", "SweeperActor", "apply_batch"]
