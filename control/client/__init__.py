"""Reach the cluster (the only way agent/ and cli/ do): REST, informers, queues, leases.

``RestClient`` calls the API server; ``Informer`` keeps a watched, indexed cache;
``RateLimitingQueue`` feeds controller workers; ``LeaderElector`` picks one active
copy of a component. Standard library only, so they run anywhere Python does.
"""

from control.client.cache import Store, namespace_index
from control.client.errors import (
    AlreadyExists,
    ApiException,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
)
from control.client.informer import Informer
from control.client.leaderelection import LeaderElector
from control.client.rest import RestClient, object_key, resource_for
from control.client.watch import Watch
from control.client.workqueue import RateLimitingQueue

__all__ = ["AlreadyExists", "ApiException", "BadRequest", "Conflict", "ConnectionFailed",
           "Forbidden", "Gone", "Informer", "Invalid", "LeaderElector", "NotFound",
           "RateLimitingQueue", "RestClient", "ServerError", "Store", "TooManyRequests",
           "Unauthorized", "Watch", "namespace_index", "object_key", "resource_for"]
