"""Route modules beyond the core API in engage/http.py.

Each module has ``register(app, system)``; ``create_app`` calls them in order.
"""

MODULES: list = []
