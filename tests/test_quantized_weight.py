# Copyright © 2026 mlx-lowbit contributors.
"""QuantizedWeight files: round trip, and rejection of damaged ones."""

import os

import mlx.core as mx
import numpy as np
import pytest
from conftest import FORMATS, format_id

import mlx_lowbit as lb


def quantized(f, n=16, k=128):
    fmt, opts = f
    return lb.quantize(mx.random.normal((n, k), key=mx.random.key(2)), fmt, 64, **opts)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_save_load_round_trip(tmp_path, f):
    qw = quantized(f)
    path = tmp_path / "w.safetensors"
    qw.save(path)
    back = lb.QuantizedWeight.load(path)
    assert (back.fmt, back.group_size, back.vector_size, back.index_bits, back.shape) == (
        qw.fmt,
        qw.group_size,
        qw.vector_size,
        qw.index_bits,
        qw.shape,
    )
    for name, a in qw.arrays().items():
        b = getattr(back, name)
        assert b.dtype == a.dtype
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    x = mx.random.normal((3, 128))
    np.testing.assert_array_equal(np.asarray(lb.matmul(x, back)), np.asarray(lb.matmul(x, qw)))
    assert os.listdir(tmp_path) == ["w.safetensors"]


def rewrite(path, arrays=None, metadata=None):
    """Re-save a file with some tensors or metadata changed."""
    a, m = mx.load(str(path), return_metadata=True)
    a.update(arrays or {})
    m.update(metadata or {})
    mx.save_safetensors(str(path), a, metadata=m)


def test_load_rejects_modified_tensor(tmp_path):
    path = tmp_path / "w.safetensors"
    qw = quantized(FORMATS[0])
    qw.save(path)
    flipped = np.asarray(qw.packed).copy()
    flipped[0, 0] ^= 1
    rewrite(path, arrays={"packed": mx.array(flipped)})
    with pytest.raises(ValueError, match="tensor 'packed' does not match its recorded checksum"):
        lb.QuantizedWeight.load(path)


def test_load_rejects_corrupt_bytes(tmp_path):
    path = tmp_path / "w.safetensors"
    quantized(FORMATS[3]).save(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its recorded checksum"):
        lb.QuantizedWeight.load(path)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="w.safetensors: .* the file is truncated or damaged"):
        lb.QuantizedWeight.load(path)


def test_load_rejects_metadata_that_disagrees(tmp_path):
    path = tmp_path / "w.safetensors"
    quantized(FORMATS[0]).save(path)
    rewrite(path, metadata={"group_size": "32"})
    with pytest.raises(ValueError, match="mean K=64, which needs 4 uint32 words per row"):
        lb.QuantizedWeight.load(path)
    quantized(FORMATS[0]).save(path)
    rewrite(path, metadata={"format": "binary"})
    with pytest.raises(ValueError, match="packed binary weight has shape"):
        lb.QuantizedWeight.load(path)
    quantized(FORMATS[0]).save(path)
    rewrite(path, metadata={"shape": "16,256"})
    with pytest.raises(ValueError, match="metadata says shape 16,256"):
        lb.QuantizedWeight.load(path)


def test_load_rejects_missing_tensor_and_foreign_files(tmp_path):
    path = tmp_path / "w.safetensors"
    qw = quantized(FORMATS[3])
    qw.save(path)
    arrays, metadata = mx.load(str(path), return_metadata=True)
    del arrays["codebook"]
    mx.save_safetensors(str(path), arrays, metadata=metadata)
    with pytest.raises(ValueError, match=r"records tensor\(s\) \['codebook'\] that the file lacks"):
        lb.QuantizedWeight.load(path)
    mx.save_safetensors(str(path), {"weight": mx.zeros((2, 2))})
    with pytest.raises(ValueError, match="not an mlx-lowbit weight file"):
        lb.QuantizedWeight.load(path)


def test_load_rejects_invalid_ternary_code(tmp_path):
    path = tmp_path / "w.safetensors"
    qw = quantized(FORMATS[0])
    packed = np.asarray(qw.packed).copy()
    packed[3, 1] |= np.uint32(3 << 6)  # code 3 at weight 3 of that word
    bad = dict(fmt="ternary", group_size=64, packed=mx.array(packed), scales=qw.scales)
    with pytest.raises(ValueError, match=r"invalid code 3 \(first in row 3\)"):
        lb.QuantizedWeight(**bad)
    lb.QuantizedWeight(**bad, check=False).save(path)  # checksums match
    with pytest.raises(ValueError, match="invalid code 3"):
        lb.QuantizedWeight.load(path)


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"

    def broken(file, arrays, metadata=None):
        with open(file, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(mx, "save_safetensors", broken)
    with pytest.raises(OSError, match="disk full"):
        quantized(FORMATS[0]).save(path)
    assert os.listdir(tmp_path) == []


def test_save_replaces_an_existing_file_whole(tmp_path):
    path = tmp_path / "w.safetensors"
    quantized(FORMATS[0]).save(path)
    qw = quantized(FORMATS[1])
    qw.save(path)
    assert lb.QuantizedWeight.load(path).fmt == "binary"
