from engage.actors.webhooks.actor import WebhookActor
from engage.actors.webhooks.messages import DeliverDue

__all__ = ["DeliverDue", "WebhookActor"]
