"""Route modules beyond the core API in engage/http.py.

Each module has ``register(app, system)``; ``create_app`` calls them in order.
"""

from engage.routes import moderation, notifications, openapi, publishing

#: ``openapi`` last: it checks that the document covers every route registered before it.
MODULES: list = [publishing.register, notifications.register, moderation.register,
                 openapi.register]
