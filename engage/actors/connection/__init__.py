from engage.actors.connection.actor import ConnectionActor, ConnectionContext
from engage.actors.connection.directory import ConnectionDirectory
from engage.actors.connection.messages import Close, Deliver

__all__ = ["Close", "ConnectionActor", "ConnectionContext", "ConnectionDirectory", "Deliver"]
