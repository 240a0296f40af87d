"""Controllers: level-triggered reconcile loops over informer caches (DESIGN.md §5).

The shared toolkit: ``controller`` (queue, workers, sync), ``expectations``,
``batch`` (slow-start and parallel API calls), ``ownership`` (controllerRefs,
adoption, child events) and ``status`` (status writes); each other module or
package is one controller; ``manager`` runs them behind leader election.
"""
