"""Pure judgements of the verbs: rollout status lines, history, undo, drain filters, errors."""

import pytest

from cli.errors import CommandError, describe_api_error
from cli.logs_cmd import pod_rank, selector_string
from cli.node_cmd import classify
from cli.rollout_cmd import (
    daemonset_status,
    deployment_status,
    history_rows,
    pick_revision,
    statefulset_status,
    template_for_undo,
)
from control.client import errors as api_errors


def dep(generation=2, observed=2, desired=3, **status):
    return {"kind": "Deployment", "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": desired}, "status": {"observedGeneration": observed, **status}}


@pytest.mark.parametrize("obj,line,done", [
    (dep(observed=1), "Waiting for deployment spec update to be observed...", False),
    (dep(updatedReplicas=1), 'Waiting for deployment "web" rollout to finish: 1 out of 3 new '
                             'replicas have been updated...', False),
    (dep(updatedReplicas=3, replicas=4), 'Waiting for deployment "web" rollout to finish: 1 old '
                                         'replicas are pending termination...', False),
    (dep(updatedReplicas=3, replicas=3, availableReplicas=2),
     'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are '
     'available...', False),
    (dep(updatedReplicas=3, replicas=3, availableReplicas=3),
     'deployment "web" successfully rolled out', True),
])
def test_deployment_status_lines(obj, line, done):
    assert deployment_status(obj) == (line, done)


def test_progress_deadline_is_an_error():
    obj = dep(conditions=[{"type": "Progressing", "status": "False",
                           "reason": "ProgressDeadlineExceeded"}])
    with pytest.raises(CommandError, match="exceeded its progress deadline"):
        deployment_status(obj)


def test_daemonset_and_statefulset_status():
    ds = {"metadata": {"name": "d", "generation": 1}, "spec": {},
          "status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                     "updatedNumberScheduled": 2, "numberAvailable": 1}}
    assert daemonset_status(ds) == ('Waiting for daemon set "d" rollout to finish: 1 of 2 '
                                    'updated pods are available...', False)
    ds["status"]["numberAvailable"] = 2
    assert daemonset_status(ds) == ('daemon set "d" successfully rolled out', True)
    sts = {"metadata": {"name": "s", "generation": 1}, "spec": {"replicas": 2},
           "status": {"observedGeneration": 1, "readyReplicas": 1}}
    assert statefulset_status(sts) == ("Waiting for 1 pods to be ready...", False)
    sts["status"].update(readyReplicas=2, currentRevision="s-1", updateRevision="s-1",
                         currentReplicas=2)
    assert statefulset_status(sts) == (
        "statefulset rolling update complete 2 pods at revision s-1...", True)


def rs(revision, image, cause=None):
    annotations = {"deployment.kubernetes.io/revision": str(revision)}
    if cause:
        annotations["kubernetes.io/change-cause"] = cause
    return {"metadata": {"name": f"web-{revision}", "annotations": annotations},
            "spec": {"template": {"metadata": {"labels": {"app": "web",
                                                          "pod-template-hash": "h"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_history_and_undo_choice():
    sets = [rs(1, "v1"), rs(3, "v3", "bump"), rs(2, "v2")]
    assert history_rows(sorted(sets, key=lambda r: int(
        r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))) == [
        "REVISION  CHANGE-CAUSE", "1         <none>", "2         <none>", "3         bump"]
    assert pick_revision(sets, 0)["metadata"]["name"] == "web-2"
    assert pick_revision(sets, 1)["metadata"]["name"] == "web-1"
    with pytest.raises(CommandError, match="unable to find specified revision 7"):
        pick_revision(sets, 7)
    with pytest.raises(CommandError, match="no rollout history"):
        pick_revision([rs(1, "v1")], 0)
    template = template_for_undo(rs(1, "v1"))
    assert template["metadata"]["labels"] == {"app": "web"}


def pod(name, owner_kind=None, phase="Running", volumes=(), mirror=False):
    meta = {"name": name, "namespace": "default"}
    if owner_kind:
        meta["ownerReferences"] = [{"kind": owner_kind, "name": "o", "controller": True}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "x"}
    return {"metadata": meta, "spec": {"volumes": list(volumes)}, "status": {"phase": phase}}


def test_drain_filters():
    pods = [pod("rs", "ReplicaSet"), pod("ds", "DaemonSet"), pod("bare"),
            pod("done", phase="Succeeded"), pod("mirror", mirror=True),
            pod("scratch", "ReplicaSet", volumes=[{"name": "v", "emptyDir": {}}])]
    delete, warnings, errors = classify(pods)
    assert [p["metadata"]["name"] for p in delete] == ["rs", "done"]
    assert set(errors) == {
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)",
        "cannot delete Pods that declare no controller (use --force to override)",
        "cannot delete Pods with local storage (use --delete-emptydir-data to override)"}
    delete, warnings, errors = classify(pods, ignore_daemonsets=True, force=True,
                                        delete_emptydir=True)
    assert not errors
    assert [p["metadata"]["name"] for p in delete] == ["rs", "bare", "done", "scratch"]
    assert warnings["ignoring DaemonSet-managed Pods"] == ["default/ds"]


def test_logs_picks_running_ready_pods_first():
    ready = {"spec": {"nodeName": "n"}, "metadata": {"name": "b"},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    pending = {"spec": {}, "metadata": {"name": "a"}, "status": {"phase": "Pending"}}
    assert sorted([pending, ready], key=pod_rank)[0] is ready
    assert selector_string({"matchLabels": {"b": "2", "a": "1"},
                            "matchExpressions": [{"key": "t", "operator": "In",
                                                  "values": ["x", "y"]}]}) == \
        "a=1,b=2,t in (x,y)"


def test_api_errors_read_like_kubectl():
    missing = api_errors.from_status(404, {"message": 'pods "x" not found',
                                           "reason": "NotFound"})
    assert describe_api_error(missing) == 'Error from server (NotFound): pods "x" not found'
    invalid = api_errors.from_status(422, {
        "message": 'Deployment.apps "w" is invalid: spec.replicas: Invalid value: -1',
        "reason": "Invalid", "details": {"kind": "Deployment", "name": "w", "causes": [
            {"field": "spec.replicas", "message": "Invalid value: -1"},
            {"field": "spec.x", "message": "Required value"}]}})
    assert describe_api_error(invalid).splitlines() == [
        'The Deployment "w" is invalid: ', "* spec.replicas: Invalid value: -1",
        "* spec.x: Required value"]
    one = api_errors.from_status(422, {"message": "m", "reason": "Invalid", "details": {
        "kind": "ConfigMap", "name": "B", "causes": [{"field": "metadata.name",
                                                      "message": "Invalid value: 'B'"}]}})
    assert describe_api_error(one) == \
        'The ConfigMap "B" is invalid: metadata.name: Invalid value: \'B\''
    assert describe_api_error(api_errors.from_status(422, {"message": "plain"})) == "plain"


def test_wait_predicates_and_durations():
    from cli.wait_cmd import parse_duration, predicate
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert predicate("condition=Ready")(ready)
    assert predicate("condition=ready=true")(ready)
    assert not predicate("condition=Ready=False")(ready)
    assert not predicate("condition=Available")(ready)
    assert predicate("delete")(None) and not predicate("delete")(ready)
    assert predicate("jsonpath={.status.phase}=Running")(ready)
    assert not predicate("jsonpath={.status.phase}=Pending")(ready)
    with pytest.raises(CommandError):
        predicate("sometime")
    assert parse_duration("30s") == 30 and parse_duration("2m") == 120
    assert parse_duration("5") == 5
