import pytest

from distilnas.fileio import atomic_open


def test_atomic_open_replaces_only_on_success(tmp_path):
    out = tmp_path / "sub" / "scores.jsonl"
    with atomic_open(out) as f:
        f.write("a\n")
        assert not out.exists()  # nothing visible until the block ends
    assert out.read_text() == "a\n"
    with pytest.raises(RuntimeError):
        with atomic_open(out) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert out.read_text() == "a\n"  # the finished file survives a failed rewrite
    assert [p.name for p in out.parent.iterdir()] == ["scores.jsonl"]  # no temporary left behind
