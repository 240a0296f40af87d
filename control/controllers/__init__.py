"""Controllers: level-triggered reconcile loops over informer caches (DESIGN.md §5).

``base`` holds the shared shape (queue, workers, expectations, ownerReferences);
each other module is one controller; ``manager`` runs them behind leader election.
"""
