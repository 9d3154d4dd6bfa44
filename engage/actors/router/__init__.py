from engage.actors.router.actor import RouterActor, Sink
from engage.actors.router.messages import (Drop, Ready, Seed, Subscribe, Subscribed,
                                           Unsubscribe, Watching)

__all__ = ["Drop", "Ready", "RouterActor", "Seed", "Sink", "Subscribe", "Subscribed",
           "Unsubscribe", "Watching"]
