"""Generated RayCluster manifests validate against KubeRay's own CRD schema.

The CRD (``ray.io_rayclusters.yaml``) lives outside the repository, in ``../shared/kuberay``
(or the folder named by ``MLBUILD_KUBERAY_CRD_DIR``). It is present in CI; a missing file is a
failure, not a skip, so this test can never pass by not running.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlbuild.remote.kuberay.manifest import (
    ANNOTATION_BUILD_ID,
    ANNOTATION_IMAGE_DIGEST,
    LABEL_BUILD_ID,
    LABEL_IMAGE_DIGEST,
    LABEL_KEEP,
    MAX_CLUSTER_NAME_LENGTH,
    ClusterSpec,
    HeadGroup,
    HeadPorts,
    NodeResources,
    WorkerGroup,
    build_manifest,
    cluster_name,
    cpu_quantity,
    digest_label_value,
    image_digest,
    label_value,
    selector_for_reuse,
    spec_shape,
)

from support.kuberay_schema import CrdSchema, ManifestInvalid, openapi_to_jsonschema

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DIGEST = "sha256:" + "0123456789abcdef" * 4


def kuberay_dir() -> Path:
    env = os.environ.get("MLBUILD_KUBERAY_CRD_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "kuberay"


@pytest.fixture(scope="module")
def crd() -> CrdSchema:
    path = kuberay_dir() / "ray.io_rayclusters.yaml"
    if not path.is_file():
        pytest.fail(
            f"KubeRay CRD not found at {path}: these tests validate manifests against it. "
            "Put ray.io_rayclusters.yaml there or set MLBUILD_KUBERAY_CRD_DIR."
        )
    return CrdSchema(path, "v1")


def base_spec(**overrides: Any) -> ClusterSpec:
    fields: dict[str, Any] = {
        "build_id": "build-1",
        "image": f"registry.example.com:5000/team/train@{DIGEST}",
        "ray_version": "2.52.0",
        "namespace": "ml",
        "workers": (WorkerGroup(group_name="cpu", replicas=2, min_replicas=1, max_replicas=4),),
    }
    fields.update(overrides)
    return ClusterSpec(**fields)


# ---------------------------------------------------------------- strategies

hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
repo_segment = st.from_regex(r"[a-z0-9]{1,20}([._-][a-z0-9]{1,20}){0,3}", fullmatch=True)
images = st.one_of(
    st.builds(
        lambda host, segs, tag, h: f"{host}{'/'.join(segs)}{tag}@sha256:{h}",
        st.sampled_from(["", "ghcr.io/", "registry.example.com:5000/", "localhost/"]),
        st.lists(repo_segment, min_size=1, max_size=8),
        st.one_of(st.just(""), st.from_regex(r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", fullmatch=True)),
        hex64,
    ),
    hex64.map(lambda h: f"sha256:{h}"),
)
cpus = st.integers(min_value=1, max_value=512_000).map(lambda m: m / 1000)
memory = st.one_of(
    st.integers(min_value=1, max_value=2**50),
    st.builds(
        lambda n, frac, unit: f"{n}{frac}{unit}",
        st.integers(min_value=1, max_value=100_000),
        st.sampled_from(["", ".5", ".25"]),
        st.sampled_from(["", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "e3", "E6"]),
    ),
)
resources = st.builds(
    NodeResources, cpus=cpus, memory=memory, gpus=st.integers(min_value=0, max_value=16)
)
start_params = st.dictionaries(
    st.from_regex(r"[a-z][a-z-]{0,20}", fullmatch=True), st.text(max_size=30), max_size=4
)


@st.composite
def worker_groups(draw: st.DrawFn) -> WorkerGroup:
    lo, mid, hi = sorted(draw(st.lists(st.integers(0, 2**31 - 1), min_size=3, max_size=3)))
    if draw(st.booleans()):
        lo, mid, hi = sorted(draw(st.lists(st.integers(0, 50), min_size=3, max_size=3)))
    return WorkerGroup(
        group_name=draw(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", fullmatch=True)),
        replicas=mid,
        min_replicas=lo,
        max_replicas=draw(st.sampled_from([hi, None])) if mid == hi else hi,
        resources=draw(resources),
        ray_start_params=draw(start_params),
    )


specs = st.builds(
    ClusterSpec,
    build_id=st.text(min_size=1, max_size=300),
    image=images,
    ray_version=st.from_regex(r"[12]\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True),
    namespace=st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True),
    head=st.builds(
        HeadGroup,
        resources=resources,
        ray_start_params=start_params,
        ports=st.one_of(
            st.just(HeadPorts()),
            st.builds(
                HeadPorts,
                gcs=st.integers(1, 20000),
                dashboard=st.integers(20001, 40000),
                client=st.integers(40001, 50000),
                extra=st.dictionaries(
                    st.sampled_from(["metrics", "serve", "as-metrics", "p8"]),
                    st.integers(50001, 65535),
                    max_size=2,
                    dict_class=dict,
                ).filter(lambda d: len(set(d.values())) == len(d)),
            ),
        ),
    ),
    workers=st.lists(worker_groups(), max_size=4, unique_by=lambda g: g.group_name).map(tuple),
    enable_in_tree_autoscaling=st.booleans(),
    keep=st.booleans(),
    env=st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True), st.text(max_size=40)
    ),
    service_account=st.one_of(st.none(), st.just("ray-runner")),
    image_pull_secrets=st.lists(st.just("regcred"), max_size=1).map(tuple),
)


def assert_labels_valid(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        assert len(value) <= 63 and LABEL_VALUE.match(value), (key, value)


# ---------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs)
def test_every_generated_manifest_validates(crd: CrdSchema, spec: ClusterSpec) -> None:
    manifest = build_manifest(spec)
    assert crd.errors(manifest) == []
    assert manifest == build_manifest(spec)  # pure and deterministic

    meta = manifest["metadata"]
    name = meta["name"]
    assert len(name) <= 63 and DNS1123_LABEL.match(name)
    # KubeRay's own, stricter rule: a DNS-1035 label of at most 53 characters.
    assert len(name) <= MAX_CLUSTER_NAME_LENGTH and DNS1035_LABEL.match(name)
    assert len(name + "-head-svc") <= 63
    assert meta["namespace"] == spec.namespace

    digest = image_digest(spec.image)
    assert digest[len("sha256:") :][:12] in name
    labels = meta["labels"]
    assert_labels_valid(labels)
    assert labels[LABEL_BUILD_ID] == label_value(spec.build_id)
    assert labels[LABEL_IMAGE_DIGEST] == digest_label_value(digest)
    assert (labels.get(LABEL_KEEP) == "true") == spec.keep
    assert meta["annotations"][ANNOTATION_BUILD_ID] == spec.build_id
    assert meta["annotations"][ANNOTATION_IMAGE_DIGEST] == digest

    cs = manifest["spec"]
    assert cs["rayVersion"] == spec.ray_version
    assert cs["enableInTreeAutoscaling"] is spec.enable_in_tree_autoscaling
    head = cs["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == spec.image
    limits = head["resources"]["limits"]
    assert head["resources"]["requests"] == limits
    assert limits["cpu"] == cpu_quantity(spec.head.resources.cpus)
    assert limits.get("nvidia.com/gpu") == (
        str(spec.head.resources.gpus) if spec.head.resources.gpus else None
    )
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports["client"] == spec.head.ports.client
    assert_labels_valid(cs["headGroupSpec"]["template"]["metadata"]["labels"])

    groups = cs.get("workerGroupSpecs", [])
    assert [g["groupName"] for g in groups] == [w.group_name for w in spec.workers]
    for group, worker in zip(groups, spec.workers, strict=True):
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["replicas"] == worker.replicas
        container = group["template"]["spec"]["containers"][0]
        assert container["image"] == spec.image
        gpus = container["resources"]["limits"].get("nvidia.com/gpu")
        assert gpus == (str(worker.resources.gpus) if worker.resources.gpus else None)


@settings(max_examples=200, deadline=None)
@given(a=st.text(min_size=1, max_size=200), b=st.text(min_size=1, max_size=200), h=hex64)
def test_names_and_labels_keep_builds_apart(a: str, b: str, h: str) -> None:
    digest = f"sha256:{h}"
    for build_id in (a, b):
        name = cluster_name(build_id, digest)
        assert len(name) <= MAX_CLUSTER_NAME_LENGTH and DNS1035_LABEL.match(name), name
        value = label_value(build_id)
        assert len(value) <= 63 and LABEL_VALUE.match(value), value
    if a != b:
        assert cluster_name(a, digest) != cluster_name(b, digest)
        assert label_value(a) != label_value(b)
    assert cluster_name(a, digest) != cluster_name(
        a, "sha256:" + ("0" if h[0] != "0" else "1") + h[1:12] + h[12:]
    )


def test_the_kuberay_sample_validates(crd: CrdSchema) -> None:
    """The validator accepts KubeRay's own sample (no false rejections of the basics)."""
    import yaml

    sample = yaml.safe_load((kuberay_dir() / "ray-cluster.sample.yaml").read_text())
    assert crd.errors(sample) == []


# ---------------------------------------------------------------- the validator can fail


def broken(mutate: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(build_manifest(base_spec()))
    mutate(manifest)
    return manifest


def _set(path: str, value: Any) -> Any:
    def mutate(m: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = m
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()


def _set_label(key: str, value: str) -> Any:
    def mutate(m: dict[str, Any]) -> None:
        m["metadata"]["labels"][key] = value

    return mutate


BROKEN = {
    "replicas is a string": (_set("spec.workerGroupSpecs.0.replicas", "2"), "replicas"),
    "replicas beyond int32": (_set("spec.workerGroupSpecs.0.replicas", 2**31), "replicas"),
    "no containers": (_set("spec.headGroupSpec.template.spec.containers", _DELETE), "containers"),
    "no head group": (_set("spec.headGroupSpec", _DELETE), "headGroupSpec"),
    "no groupName": (_set("spec.workerGroupSpecs.0.groupName", _DELETE), "groupName"),
    "container without name": (
        _set("spec.headGroupSpec.template.spec.containers.0.name", _DELETE),
        "name",
    ),
    "misspelt field": (_set("spec.rayversion", "2.52.0"), "rayversion"),
    "bad cpu quantity": (
        _set("spec.headGroupSpec.template.spec.containers.0.resources.limits.cpu", "two"),
        "cpu",
    ),
    "float quantity": (
        _set("spec.headGroupSpec.template.spec.containers.0.resources.limits.cpu", 1.5),
        "cpu",
    ),
    "rayStartParams value not a string": (
        _set("spec.headGroupSpec.rayStartParams.num-cpus", 1),
        "rayStartParams",
    ),
    "autoscaling flag a string": (
        _set("spec.enableInTreeAutoscaling", "yes"),
        "enableInTreeAutoscaling",
    ),
    "duplicate container port": (
        _set(
            "spec.headGroupSpec.template.spec.containers.0.ports.1",
            {"containerPort": 6379, "name": "again"},
        ),
        "duplicate",
    ),
    "name too long for KubeRay": (_set("metadata.name", "a" * 54), "53"),
    "name not DNS": (_set("metadata.name", "Build_1"), "metadata.name"),
    "label value too long": (_set_label(LABEL_BUILD_ID, "x" * 64), "label"),
    "wrong apiVersion": (_set("apiVersion", "ray.io/v2"), "apiVersion"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_manifests_are_rejected(crd: CrdSchema, case: str) -> None:
    mutate, expected = BROKEN[case]
    manifest = broken(mutate)
    problems = crd.errors(manifest)
    assert problems, f"{case}: accepted a broken manifest"
    assert any(expected in p for p in problems), problems
    with pytest.raises(ManifestInvalid):
        crd.validate(manifest)


def test_openapi_extensions_are_honoured() -> None:
    openapi = {
        "type": "object",
        "properties": {
            "q": {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": "^[0-9]+m?$",
                "x-kubernetes-int-or-string": True,
            },
            "bare": {"x-kubernetes-int-or-string": True},
            "when": {"type": "string", "nullable": True},
            "n": {"type": "integer", "format": "int32"},
            "free": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {},
            },
        },
    }
    from jsonschema import Draft7Validator

    v = Draft7Validator(openapi_to_jsonschema(openapi))
    assert v.is_valid({"q": 2, "bare": "50%", "when": None, "n": 2**31 - 1, "free": {"x": 1}})
    assert v.is_valid({"q": "500m", "bare": 3})
    assert not v.is_valid({"q": "five"})
    assert not v.is_valid({"q": 1.5})
    assert not v.is_valid({"bare": [1]})
    assert not v.is_valid({"n": 2**31})
    assert not v.is_valid({"unknown": 1})
    assert Draft7Validator(openapi_to_jsonschema(openapi, strict=False)).is_valid({"unknown": 1})


# ---------------------------------------------------------------- spec errors


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image": "ghcr.io/acme/train:latest"}, "not pinned by digest"),
        ({"image": "ghcr.io/acme/train@sha256:abc"}, "not pinned by digest"),
        ({"image": "GHCR.io/Acme@" + DIGEST}, "not pinned by digest"),
        ({"head": HeadGroup(resources=NodeResources(cpus=0))}, "cpus"),
        ({"head": HeadGroup(resources=NodeResources(cpus=0.0001))}, "millicore"),
        ({"head": HeadGroup(resources=NodeResources(memory="lots"))}, "quantity"),
        ({"head": HeadGroup(resources=NodeResources(memory="0Gi"))}, "positive"),
        ({"head": HeadGroup(resources=NodeResources(gpus=-1))}, "gpus"),
        ({"head": HeadGroup(ports=HeadPorts(client=6379))}, "twice"),
        ({"head": HeadGroup(ports=HeadPorts(extra={"a-very-long-port-name": 9000}))}, "IANA"),
        ({"workers": (WorkerGroup(replicas=3, min_replicas=4),)}, "min_replicas"),
        ({"workers": (WorkerGroup(replicas=3, max_replicas=2),)}, "max_replicas"),
        ({"workers": (WorkerGroup(), WorkerGroup())}, "twice"),
        ({"workers": (WorkerGroup(group_name="GPU"),)}, "DNS-1123"),
        ({"namespace": "ML"}, "namespace"),
        ({"ray_version": "latest"}, "ray_version"),
        ({"name": "9lives"}, "DNS-1035"),
        ({"build_id": ""}, "build_id"),
        ({"extra_labels": {"mlbuild.dev/build-id": "x"}}, "reserved"),
    ],
)
def test_bad_specs_raise(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_manifest(base_spec(**overrides))


def test_image_id_form_is_accepted_and_never_pulled(crd: CrdSchema) -> None:
    manifest = build_manifest(base_spec(image=DIGEST))
    assert crd.errors(manifest) == []
    container = manifest["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert container["image"] == DIGEST
    assert container["imagePullPolicy"] == "Never"


def test_shape_and_reuse_selector() -> None:
    a = base_spec(build_id="one")
    b = base_spec(build_id="two", keep=True)
    assert spec_shape(a) == spec_shape(b)  # the build id and keep flag do not change the shape
    assert spec_shape(a) != spec_shape(base_spec(workers=()))
    selector = selector_for_reuse(DIGEST, spec_shape(a))
    labels = build_manifest(b)["metadata"]["labels"]
    for term in selector.split(","):
        key, _, value = term.partition("=")
        assert labels[key] == value
    assert LABEL_KEEP not in build_manifest(a)["metadata"]["labels"]


def test_remote_data_cluster_names_its_secret_and_never_holds_a_credential(crd: CrdSchema) -> None:
    """Remote-data mode (remote/ray_remote_data.py): the pods get the remote URL as a value and
    the credentials by reference to a Secret (``--kube-secret``), and the manifest stays valid."""
    from mlbuild.engine.interfaces import ActionSpec, KeySpec
    from mlbuild.remote.kuberay.executor import SECRET_ENV, cluster_spec_for
    from mlbuild.rules.rule import RuleOptions

    step = ActionSpec(key="k", label="//a:b", rule_file="a/steps.py", rule_func="f", inputs=[], config=None,
                      options=RuleOptions(), key_spec=KeySpec(1, "a/steps.py:f", "c", {}, None, "e"),
                      workspace="/nowhere", image=f"registry.example.com:5000/team/train@{DIGEST}")
    spec = cluster_spec_for(step, "build-1", "ml", 2, "2.52.0", remote_url="s3://team/cache", secret="mlbuild-remote")
    manifest = build_manifest(spec)
    assert crd.errors(manifest) == []
    for group in [manifest["spec"]["headGroupSpec"], *manifest["spec"]["workerGroupSpecs"]]:
        env = group["template"]["spec"]["containers"][0]["env"]
        values = {e["name"]: e.get("value") for e in env if "value" in e}
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
        assert values["MLBUILD_REMOTE_CACHE"] == "s3://team/cache"
        assert set(refs) == set(SECRET_ENV) and not set(refs) & set(values)
        assert all(r["name"] == "mlbuild-remote" and r["optional"] is True for r in refs.values())
    plain = build_manifest(cluster_spec_for(step, "build-1", "ml", 2, "2.52.0"))
    assert "secretKeyRef" not in repr(plain) and "MLBUILD_REMOTE_CACHE" not in repr(plain)
