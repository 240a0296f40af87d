"""`steer top`: kubectl top's figures (millicores rounded up, whole MiB, % of allocatable)."""

from cli import top_cmd


def node_metrics(name, cpu, memory):
    return {"metadata": {"name": name}, "usage": {"cpu": cpu, "memory": memory}}


def pod_metrics(name, namespace, *containers):
    return {"metadata": {"name": name, "namespace": namespace},
            "containers": [{"name": n, "usage": {"cpu": c, "memory": m}}
                           for n, c, m in containers]}


def node(name, cpu, memory):
    return {"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu,
                                                                   "memory": memory}}}


def test_node_rows_with_shares_and_unknown_nodes():
    rows = top_cmd.node_rows(
        [node_metrics("n1", "123456789n", "1572864Ki"), node_metrics("n2", "2", "100Mi")],
        [node("n1", "4", "8Gi"), node("n2", "2", "200Mi"), node("n3", "1", "1Gi")])
    assert rows == [["n1", "124m", "3%", "1536Mi", "18%"],
                    ["n2", "2000m", "100%", "100Mi", "50%"],
                    ["n3", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]]


def test_node_rows_sorted_by_cpu():
    rows = top_cmd.node_rows([node_metrics("a", "1m", "1Mi"), node_metrics("b", "5m", "1Mi")],
                             [], sort_by="cpu")
    assert [r[0] for r in rows] == ["b", "a"]
    assert rows[0][2] == "0%"           # no allocatable known


def test_pod_rows_sum_containers_or_list_them():
    metrics = [pod_metrics("web", "default", ("a", "1500u", "1Mi"), ("b", "2m", "3Mi")),
               pod_metrics("db", "data", ("c", "0", "512Ki"))]
    assert top_cmd.pod_rows(metrics) == [["db", "0m", "0Mi"], ["web", "4m", "4Mi"]]
    assert top_cmd.pod_rows(metrics, containers=True, with_namespace=True) == [
        ["data", "db", "c", "0m", "0Mi"],
        ["default", "web", "a", "2m", "1Mi"], ["default", "web", "b", "2m", "3Mi"]]
    assert [r[0] for r in top_cmd.pod_rows(metrics, sort_by="memory")] == ["web", "db"]
