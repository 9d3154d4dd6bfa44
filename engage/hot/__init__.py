"""The fast lane: the hot HTTP routes, served without quart (docs/decisions.md §12).

    routes.py   HotRoutes (views, likes, applause, events, counts reads, health) and HOT_RULES
    request.py  identity, address, bodies, JSON and problem+json answers
"""

from engage.hot.routes import HOT_RULES, HotRoutes, match

__all__ = ["HOT_RULES", "HotRoutes", "match"]
