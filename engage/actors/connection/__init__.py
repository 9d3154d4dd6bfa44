from engage.actors.connection.actor import ConnectionActor
from engage.actors.connection.context import ConnectionContext
from engage.actors.connection.directory import ConnectionDirectory

__all__ = ["ConnectionActor", "ConnectionContext", "ConnectionDirectory"]
