from engage.actors.publisher.actor import PUBLISH_GROUP, PublisherActor
from engage.actors.publisher.messages import PublishPayload

__all__ = ["PUBLISH_GROUP", "PublishPayload", "PublisherActor"]
