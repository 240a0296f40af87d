"""Roll Deployments out through ReplicaSets: Kubernetes' DeploymentController (apps/v1).

A Deployment owns one ReplicaSet per pod template, named ``<deployment>-<hash>``
and told apart by the ``pod-template-hash`` label and selector term. Status
(counts, Progressing and Available conditions, collisionCount) is worked out from
the ReplicaSets' own status, which the ReplicaSet controller keeps. A rollback is
``kubectl rollout undo`` copying an old template back: the old ReplicaSet is then
the "new" one and gets the next revision.

* controller.py    events, claiming ReplicaSets, the sync
* replicasets.py   the new ReplicaSet and revision numbers
* rollout.py       scaling steps: rolling, recreate, proportional, history cleanup
* progress.py      status and its conditions, written
The pure rules (Kubernetes' deployment/util package), one idea each:
* conditions.py    the status and its conditions, judged
* sizing.py        replica arithmetic: maxSurge, maxUnavailable, totals
* proportion.py    proportional shares of a resize mid-rollout
* revisions.py     new vs old ReplicaSets, revision and replica annotations
* templatehash.py  the pod-template hash, stable across processes
"""

from control.controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
