"""Batch inputs: files, folders walked recursively and @lists, each photo with a stable, unique output folder name."""

from __future__ import annotations

from pathlib import Path

import pytest

from facerecon.core.errors import InputListError
from facerecon.pipeline.inputs import collect_inputs


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for rel in ("b.jpg", "a/000001.JPG", "a/000002.png", "c/000001.jpeg", "c/deep/x.webp", "notes.txt",
                ".hidden/h.jpg", "a/.thumb.jpg", "out/0/texture.png"):  # fmt: skip
        _touch(root / rel)
    return root


def test_a_folder_is_walked_recursively_and_mirrored(tree: Path) -> None:
    items = collect_inputs([tree], exclude=tree / "out")
    assert [(i.path.relative_to(tree).as_posix(), i.name) for i in items] == [
        ("a/000001.JPG", "a/000001"), ("a/000002.png", "a/000002"), ("b.jpg", "b"), ("c/000001.jpeg", "c/000001"),
        ("c/deep/x.webp", "c/deep/x"),
    ]  # fmt: skip  # sorted, image extensions in any case, no hidden entries, never the output folder
    assert all(i.path.is_absolute() for i in items)
    assert [i.name for i in collect_inputs([tree])][-1] == "out/0/texture"  # without exclude it would be taken


def test_files_lists_and_duplicates(tree: Path, tmp_path: Path) -> None:
    listing = tmp_path / "lists" / "photos.txt"
    _touch(tmp_path / "lists" / "local.jpg")
    nested = tmp_path / "lists" / "more.txt"
    nested.write_text("# a comment\n\n../data/a/000002.png\n")
    listing.write_text(f"local.jpg\n{tree / 'b.jpg'}\n  ../data/c  \n@more.txt\n")
    items = collect_inputs([str(tree / "b.jpg"), f"@{listing}", str(tree / "a" / "000001.JPG"),
                            str(tree / "missing.jpg"), str(tree / "notes.txt")])  # fmt: skip
    names = [(i.path.name, i.name) for i in items]
    assert names == [
        ("b.jpg", "b"), ("local.jpg", "local"), ("000001.jpeg", "000001"), ("x.webp", "deep/x"),
        ("000002.png", "000002"), ("000001.JPG", "000001-2"), ("missing.jpg", "missing"), ("notes.txt", "notes"),
    ]  # fmt: skip  # b.jpg once; a named file is an input whatever it is (the reader reports it)


def test_names_never_nest_inside_each_other(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _touch(root / "a" / "0.jpg")
    _touch(tmp_path / "a.jpg")
    items = collect_inputs([root, tmp_path / "a.jpg"])
    assert [i.name for i in items] == ["a/0", "a-2"]  # "a" would hold face folder 0 and photo a/0 at once


def test_fixed_names_from_an_earlier_run_are_kept(tree: Path) -> None:
    first = collect_inputs([tree / "b.jpg", tree / "a"])
    fixed = {item.path: f"kept-{k}" for k, item in enumerate(first)}
    again = collect_inputs([tree / "a", tree / "b.jpg"], names=fixed)
    assert {i.path: i.name for i in again} == fixed


def test_bad_lists(tmp_path: Path) -> None:
    with pytest.raises(InputListError, match="no such list file"):
        collect_inputs([f"@{tmp_path / 'nope.txt'}"])
    with pytest.raises(InputListError, match="is a folder"):
        collect_inputs([f"@{tmp_path}"])
    loop = tmp_path / "loop.txt"
    loop.write_text("@loop.txt\n")
    with pytest.raises(InputListError, match="includes itself"):
        collect_inputs([f"@{loop}"])
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputListError, match="not a UTF-8 text file"):
        collect_inputs([f"@{binary}"])
    with pytest.raises(TypeError):
        collect_inputs([3])  # type: ignore[list-item]
