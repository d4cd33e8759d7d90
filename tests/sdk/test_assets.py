"""Content-addressed assets and atomic writes."""

import hashlib
import os

import pytest
from brushwork.assets import AssetStore, atomic_write_bytes, content_ref, file_sha256, read_ref
from brushwork.errors import InputImageError


def test_content_ref_and_file_hash(tmp_path):
    data = b"hello brushwork"
    ref = content_ref(data)
    assert ref == "sha256:" + hashlib.sha256(data).hexdigest()
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == ref.split(":", 1)[1]


def test_store_put_get_has_and_is_idempotent(tmp_path):
    store = AssetStore(tmp_path / "assets")
    ref = store.put(b"abc")
    assert store.has(ref) and store.get(ref) == b"abc"
    assert store.put(b"abc") == ref
    digest = ref.split(":")[1]
    assert store.path(ref) == tmp_path / "assets" / digest[:2] / digest
    assert not store.has(content_ref(b"other")) and not store.has("not a ref")


def test_store_errors(tmp_path):
    store = AssetStore(tmp_path)
    with pytest.raises(InputImageError, match="is not in the asset store"):
        store.get(content_ref(b"missing"))
    with pytest.raises(InputImageError, match="not a content reference"):
        store.path("sha256:../../etc/passwd")


def test_read_ref_paths_and_refs(tmp_path):
    store = AssetStore(tmp_path / "s")
    ref = store.put(b"xyz")
    assert read_ref(ref, store) == b"xyz"
    (tmp_path / "a.png").write_bytes(b"png")
    assert read_ref(str(tmp_path / "a.png")) == b"png"
    with pytest.raises(InputImageError, match="no asset store"):
        read_ref(ref)
    with pytest.raises(InputImageError, match="malformed content reference"):
        read_ref("sha256:xyz", store)
    with pytest.raises(InputImageError, match="file paths are not accepted"):
        read_ref(str(tmp_path / "a.png"), store, allow_paths=False)
    with pytest.raises(InputImageError, match="no such file"):
        read_ref(str(tmp_path / "nope.png"))
    with pytest.raises(InputImageError, match="is a folder"):
        read_ref(str(tmp_path))


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "deep" / "out.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and os.listdir(target.parent) == ["out.bin"]


def test_atomic_write_failure_leaves_nothing(tmp_path):

    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "x.bin", object())  # cannot be written
    assert os.listdir(tmp_path) == []


def test_atomic_writes_get_normal_file_permissions(tmp_path):
    """mkstemp makes 0600 files; a saved picture must be readable like any file the user saves."""
    import os

    from brushwork.assets import atomic_write_bytes

    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "pic.png", b"data")
        private = atomic_write_bytes(tmp_path / "token", b"secret", mode=0o600)
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert (private.stat().st_mode & 0o777) == 0o600
    assert not list(tmp_path.glob(".*.part"))


def test_a_failed_atomic_write_leaves_the_old_file(tmp_path):
    import pytest
    from brushwork.assets import atomic_write_bytes, atomic_writer

    target = atomic_write_bytes(tmp_path / "doc.bin", b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(".*.part"))
