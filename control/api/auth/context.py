"""Carry the authenticated user of the request being served to the rules that need it.

Escalation prevention (escalation.py) and NodeRestriction (noderestriction.py)
judge an object against its author, deep inside a write that only the strategy
sees. The middleware sets ``current`` for the request (a context variable:
greenlet- and thread-local) and resets it afterwards; without it (authorization
off, or code outside a request) those rules have nobody to judge and stand aside.
"""

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestAuth:
    """The user of the request and the authorizer that judged it."""

    user: object            # user.UserInfo
    authorizer: object      # authz.Authorizer


current = contextvars.ContextVar("steer_request_auth", default=None)
