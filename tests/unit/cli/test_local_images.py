"""Local image building: the OCI layout is valid and reproducible; archives, registry config,
and `steer image` against a recorded cluster (containerd itself is faked here)."""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile

import pytest
import yaml

from cli import image_cmd, local_images, oci_layout, registry
from cli.local_cluster import LocalCluster
from cli.main import build_parser
from cli.oci_layout import ImageConfig, directory, regular_file, symlink

STATIC_BUSYBOX = next((p for p in local_images.BUSYBOX_PATHS
                       if os.path.isfile(p) and local_images.is_static_elf(p)), None)
needs_busybox = pytest.mark.skipif(STATIC_BUSYBOX is None,
                                   reason="busybox-static is not installed (apt-get install "
                                          "busybox-static)")

SMALL = [directory("bin"), regular_file("bin/hello", b"#!/bin/sh\necho hi\n", mode=0o755),
         symlink("bin/hi", "hello"), directory("tmp", mode=0o1777)]


def blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
        return f.read()


HELLO_CONFIG = ImageConfig(cmd=("/bin/hello",))


def write_small(path, entries=SMALL):
    layers = [oci_layout.layer_tar(entries)]
    return oci_layout.write_layout(str(path), "1", layers,
                                   oci_layout.image_config_json(layers, HELLO_CONFIG, "amd64"))


# -- the layout ------------------------------------------------------------------------
def test_layout_files_are_valid_json_and_every_digest_is_the_sha256_of_its_blob(tmp_path):
    layout = write_small(tmp_path / "img")
    with open(tmp_path / "img" / "oci-layout") as f:
        assert json.load(f) == {"imageLayoutVersion": "1.0.0"}
    with open(tmp_path / "img" / "index.json") as f:
        index = json.load(f)
    assert index["schemaVersion"] == 2
    [descriptor] = index["manifests"]
    assert descriptor["annotations"] == {"org.opencontainers.image.ref.name": "1"}
    assert descriptor["mediaType"] == oci_layout.MANIFEST_TYPE
    for name in os.listdir(tmp_path / "img" / "blobs" / "sha256"):
        data = blob(layout.path, "sha256:" + name)
        assert hashlib.sha256(data).hexdigest() == name
    manifest_bytes = blob(layout.path, descriptor["digest"])
    assert len(manifest_bytes) == descriptor["size"]
    manifest = json.loads(manifest_bytes)
    assert manifest["config"]["mediaType"] == oci_layout.CONFIG_TYPE
    config_bytes = blob(layout.path, manifest["config"]["digest"])
    assert len(config_bytes) == manifest["config"]["size"]
    config = json.loads(config_bytes)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["config"]["Cmd"] == ["/bin/hello"]
    assert config["config"]["Env"][0].startswith("PATH=")
    [layer] = manifest["layers"]
    assert layer["mediaType"] == oci_layout.LAYER_TYPE
    compressed = blob(layout.path, layer["digest"])
    assert len(compressed) == layer["size"]
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(compressed)).hexdigest()
    assert config["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
    assert layout.manifest_digest == descriptor["digest"]
    assert oci_layout.layout_tag(layout.path) == "1"


def test_two_builds_give_the_same_digests_and_bytes(tmp_path):
    first = write_small(tmp_path / "a")
    second = write_small(tmp_path / "b")
    assert first.manifest_digest == second.manifest_digest
    assert first.config_digest == second.config_digest
    assert sorted(os.listdir(tmp_path / "a" / "blobs" / "sha256")) == \
        sorted(os.listdir(tmp_path / "b" / "blobs" / "sha256"))


def test_a_changed_byte_changes_the_digest(tmp_path):
    changed = [e if e.path != "bin/hello" else regular_file("bin/hello", b"other", 0o755)
               for e in SMALL]
    assert write_small(tmp_path / "a").manifest_digest != \
        write_small(tmp_path / "b", changed).manifest_digest


def test_layer_headers_are_fixed_and_sorted():
    data = oci_layout.layer_tar(reversed(SMALL))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["bin", "bin/hello", "bin/hi", "tmp"]
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == \
            (0, 0, 0, "", "")
    by_name = {m.name: m for m in members}
    assert by_name["bin/hi"].issym() and by_name["bin/hi"].linkname == "hello"
    assert by_name["bin/hello"].mode == 0o755
    assert by_name["tmp"].isdir() and by_name["tmp"].mode == 0o1777
    assert oci_layout.gzip_fixed(data) == oci_layout.gzip_fixed(data)


def test_a_path_listed_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        oci_layout.layer_tar([directory("bin"), directory("bin/")])


def test_machine_architecture_names():
    assert oci_layout.machine_architecture("x86_64") == "amd64"
    assert oci_layout.machine_architecture("aarch64") == "arm64"
    with pytest.raises(ValueError, match="sparc"):
        oci_layout.machine_architecture("sparc")


def test_image_config_fields():
    config = ImageConfig(entrypoint=("/pause",), user="65535:65535", working_dir="/w",
                         env=("A=1",)).as_json()
    assert config == {"Entrypoint": ["/pause"], "User": "65535:65535", "WorkingDir": "/w",
                      "Env": ["A=1"]}


# -- busybox ---------------------------------------------------------------------------
@needs_busybox
def test_busybox_layer_has_the_binary_the_applet_symlinks_and_etc():
    data = oci_layout.layer_tar(local_images.busybox_layer(STATIC_BUSYBOX))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        passwd = tar.extractfile(members["etc/passwd"]).read().decode()
        group = tar.extractfile(members["etc/group"]).read().decode()
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    for applet in ("sh", "httpd", "wget", "nc", "sleep", "ls"):
        assert members[f"bin/{applet}"].issym(), applet
        assert members[f"bin/{applet}"].linkname == "busybox"
    assert "bin/busybox" in members and not members["bin/busybox"].issym()
    assert passwd.startswith("root:x:0:0:") and "\nnobody:x:65534:65534:" in passwd
    assert "root:x:0:" in group and "nobody:x:65534:" in group
    assert members["tmp"].mode == 0o1777
    assert {m.mtime for m in members.values()} == {0}


@needs_busybox
def test_busybox_layer_is_reproducible():
    assert oci_layout.layer_tar(local_images.busybox_layer(STATIC_BUSYBOX)) == \
        oci_layout.layer_tar(local_images.busybox_layer(STATIC_BUSYBOX))


def test_static_elf_detection():
    assert not local_images.is_static_elf(os.path.realpath(sys.executable))
    assert not local_images.is_static_elf(__file__)
    if STATIC_BUSYBOX:
        assert local_images.is_static_elf(STATIC_BUSYBOX)


def test_missing_tools_say_what_to_install(monkeypatch):
    monkeypatch.setattr(local_images.shutil, "which", lambda tool: None)
    with pytest.raises(local_images.ImageError, match="apt-get install skopeo"):
        local_images.require_tool("skopeo")
    monkeypatch.setattr(local_images, "BUSYBOX_PATHS", ("/nonexistent/busybox",))
    with pytest.raises(local_images.ImageError, match="apt-get install busybox-static"):
        local_images.find_static_busybox()


def test_cache_dir_is_made_private(tmp_path):
    path = local_images.cache_dir({"STEER_IMAGE_CACHE": str(tmp_path / "c" / "images")})
    assert path == str(tmp_path / "c" / "images")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_split_name():
    assert local_images.split_name("steer.local/pause:3.9") == ("steer.local/pause", "3.9")
    assert local_images.split_name("127.0.0.1:5000/x") == ("127.0.0.1:5000/x", "latest")


# -- archives --------------------------------------------------------------------------
def make_tar(path, files):
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def docker_archive(path, tags):
    manifest = json.dumps([{"Config": "c.json", "RepoTags": tags, "Layers": []}]).encode()
    return make_tar(path, {"manifest.json": manifest, "c.json": b"{}"})


def oci_archive(path, ref_name):
    index = {"schemaVersion": 2, "manifests": [
        {"digest": "sha256:" + "0" * 64, "size": 1,
         "annotations": {oci_layout.REF_NAME: ref_name}}]}
    return make_tar(path, {"oci-layout": b"{}", "index.json": json.dumps(index).encode()})


def test_archive_kinds_and_names(tmp_path):
    docker = docker_archive(tmp_path / "d.tar", ["steer.local/x:1"])
    oci = oci_archive(tmp_path / "o.tar", "steer.local/y:2")
    assert local_images.archive_kind(docker) == "docker-archive"
    assert local_images.archive_image_names(docker) == ["steer.local/x:1"]
    assert local_images.archive_kind(oci) == "oci-archive"
    assert local_images.archive_image_names(oci) == ["steer.local/y:2"]
    with pytest.raises(local_images.ImageError, match="not an image archive"):
        local_images.archive_kind(make_tar(tmp_path / "n.tar", {"a": b"b"}))
    (tmp_path / "text").write_text("hello")
    with pytest.raises(local_images.ImageError, match="not a tar file"):
        local_images.archive_kind(str(tmp_path / "text"))


# -- the registry ----------------------------------------------------------------------
def test_registry_config_listens_only_on_the_address_without_auth(tmp_path):
    path = registry.write_config(str(tmp_path / "reg"), "127.0.0.1:5123")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        config = yaml.safe_load(f)
    assert config["http"]["addr"] == "127.0.0.1:5123"
    assert "auth" not in config and "debug" not in config["http"]
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "reg" / "storage")


def test_registry_argv_in_a_netns(tmp_path):
    reg = registry.Registry(str(tmp_path), "10.0.0.1:5000", netns="lan-1")
    assert reg.argv()[:5] == ["ip", "netns", "exec", "lan-1", "docker-registry"]
    assert registry.Registry(str(tmp_path), "127.0.0.1:5000").argv()[0] == "docker-registry"


def test_listening_ports_sees_our_own_listener():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert listener.getsockname()[1] in registry.listening_ports(os.getpid())


def test_source_references(tmp_path):
    write_small(tmp_path / "img")
    assert registry.source_reference(str(tmp_path / "img")) == f"oci:{tmp_path / 'img'}:1"
    archive = docker_archive(tmp_path / "d.tar", ["x:1"])
    assert registry.source_reference(archive) == f"docker-archive:{archive}"
    image = local_images.ImageArchive("steer.local/x:1", archive, str(tmp_path / "img"))
    assert registry.source_reference(image) == f"oci:{tmp_path / 'img'}:1"
    assert os.fspath(image) == archive
    (tmp_path / "plain").mkdir()
    with pytest.raises(local_images.ImageError, match="not an OCI image layout"):
        registry.source_reference(str(tmp_path / "plain"))


# -- steer image -----------------------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STEER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def record_cluster(home, containerd):
    cluster = LocalCluster(str(home))
    cluster.state["containerd"] = containerd
    cluster.save()


def run_steer(argv):
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    code = args.func(args, out=out)
    return code, out.getvalue()


def test_import_loads_the_archive_into_every_node(home, tmp_path, monkeypatch):
    record_cluster(home, {"node-2": {"socket": "/s/2.sock"}, "node-1": {"socket": "/s/1.sock"}})
    calls = []

    def fake_import(socket_path, tar_path, base_name=""):
        calls.append((socket_path, tar_path))
        return ["steer.local/x:1"]

    monkeypatch.setattr(local_images, "import_archive", fake_import)
    archive = docker_archive(tmp_path / "x.tar", ["steer.local/x:1"])
    code, out = run_steer(["image", "import", archive])
    assert code == 0
    assert calls == [("/s/1.sock", archive), ("/s/2.sock", archive)]
    assert out.splitlines() == ["node-1: imported steer.local/x:1",
                                "node-2: imported steer.local/x:1"]
    calls.clear()
    run_steer(["image", "import", "--node", "node-2", archive])
    assert calls == [("/s/2.sock", archive)]


def test_import_errors_say_what_is_wrong(home, tmp_path):
    archive = docker_archive(tmp_path / "x.tar", ["steer.local/x:1"])
    with pytest.raises(image_cmd.CommandError, match="steer up"):
        run_steer(["image", "import", archive])
    record_cluster(home, {})
    with pytest.raises(image_cmd.CommandError, match="process runtime"):
        run_steer(["image", "import", archive])
    record_cluster(home, {"node-1": {"socket": "/s/1.sock"}})
    with pytest.raises(image_cmd.CommandError, match="no such node.*node-9"):
        run_steer(["image", "import", "--node", "node-9", archive])
    with pytest.raises(image_cmd.CommandError, match="no such file"):
        run_steer(["image", "import", str(tmp_path / "missing.tar")])
    notes = make_tar(tmp_path / "notes.tar", {"readme": b"x"})
    with pytest.raises(image_cmd.CommandError, match="not an image archive"):
        run_steer(["image", "import", notes])
    tag_only = oci_archive(tmp_path / "o.tar", "latest")
    with pytest.raises(image_cmd.CommandError, match="--base-name"):
        run_steer(["image", "import", tag_only])


def test_image_ls_lists_each_node(home, monkeypatch):
    record_cluster(home, {"node-1": {"socket": "/s/1.sock"}})
    monkeypatch.setattr(local_images, "list_images",
                        lambda socket_path: [("steer.local/pause:3.9", "670.8 KiB")])
    code, out = run_steer(["image", "ls"])
    assert out.split() == ["NODE", "NAME", "SIZE", "node-1", "steer.local/pause:3.9", "670.8",
                           "KiB"]


def test_list_images_parses_ctr_output(monkeypatch):
    header = "REF TYPE DIGEST SIZE PLATFORMS LABELS"
    row = ("steer.local/pause:3.9 application/vnd.docker.distribution.manifest.v2+json "
           "sha256:9f57 670.8 KiB   linux/amd64 io.cri-containerd.image=managed")
    alias = ("sha256:d530 application/vnd.docker.distribution.manifest.v2+json "
             "sha256:9f57 670.8 KiB   linux/amd64 io.cri-containerd.image=managed")
    monkeypatch.setattr(local_images.shutil, "which", lambda tool: "/usr/bin/" + tool)
    monkeypatch.setattr(local_images, "_run", lambda argv, doing: "\n".join(
        [header, alias, row]) + "\n")
    assert local_images.list_images("unix:///x.sock") == [("steer.local/pause:3.9", "670.8 KiB")]


@pytest.mark.skipif(shutil.which("ctr") is None, reason="ctr (containerd) is not installed")
def test_import_into_a_socket_that_is_not_there(tmp_path):
    archive = docker_archive(tmp_path / "x.tar", ["x:1"])
    with pytest.raises(local_images.ImageError, match="no containerd socket"):
        local_images.import_archive(str(tmp_path / "none.sock"), archive)


# -- the cache ------------------------------------------------------------------------
@needs_busybox
def test_builds_are_cached_by_content_and_reproducible_across_caches(tmp_path, monkeypatch):
    conversions = []

    def fake_convert(layout, tag, name, archive):
        conversions.append(name)
        with open(archive, "wb") as f:
            f.write(b"archive of " + name.encode())

    monkeypatch.setattr(local_images, "to_docker_archive", fake_convert)
    first = local_images.build_busybox(str(tmp_path / "a"))
    again = local_images.build_busybox(str(tmp_path / "a"))
    elsewhere = local_images.build_busybox(str(tmp_path / "b"))
    assert first == again and conversions == [local_images.BUSYBOX_IMAGE] * 2
    assert first.digest == elsewhere.digest and first.image_id == elsewhere.image_id
    assert first.name == local_images.BUSYBOX_IMAGE
    assert first.image_id[7:23] in os.path.basename(first.path)
    hello = local_images.build_hello(str(tmp_path / "a"))
    with open(os.path.join(hello.oci_dir, "index.json")) as f:
        manifest = json.loads(blob(hello.oci_dir, json.load(f)["manifests"][0]["digest"]))
    busybox_layers = json.loads(blob(first.oci_dir, first.digest))["layers"]
    assert manifest["layers"][0] == busybox_layers[0]          # FROM busybox: shared layer
    assert len(manifest["layers"]) == 2


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_the_hello_script_parses():
    script = os.path.join(local_images.IMAGES_DIR, "hello-serve.sh")
    assert subprocess.run(["sh", "-n", script]).returncode == 0
    assert os.path.exists(os.path.join(local_images.IMAGES_DIR, "pause.c"))


def test_image_build_refuses_an_unknown_name():
    with pytest.raises(image_cmd.CommandError, match="choose from busybox, hello, pause"):
        run_steer(["image", "build", "nginx"])
