"""ray_cluster.yaml passes Ray's own cluster-config validator, offline, and sets up what a run needs."""

from __future__ import annotations

import yaml
from conftest import REPO
from ray.autoscaler._private.util import prepare_config, validate_config


def test_ray_cluster_yaml_is_valid_for_the_ray_cluster_launcher():
    config = prepare_config(yaml.safe_load((REPO / "ray_cluster.yaml").read_text()))
    validate_config(config)  # raises on anything the launcher would reject
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    gpu_nodes = [n for name, n in nodes.items() if name != config["head_node_type"]]
    assert head["resources"].get("CPU") == 0  # the head runs the search, never a child
    assert gpu_nodes and all(n["max_workers"] >= 1 and n["min_workers"] == 0 for n in gpu_nodes)  # autoscaling
    assert any("experiments/install.sh" in c for c in config["setup_commands"])  # evolve on every node
    assert any("evolve prepare --profile h100" in c for c in config["worker_setup_commands"])  # data per node
    mounted = {dst: src for dst, src in config["file_mounts"].items()}
    assert "." in mounted.values()  # this checkout travels with the cluster
