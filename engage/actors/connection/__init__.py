from engage.actors.connection.actor import ConnectionActor, ConnectionContext
from engage.actors.connection.directory import ConnectionDirectory

__all__ = ["ConnectionActor", "ConnectionContext", "ConnectionDirectory"]
