"""Deployment zips with vendored wheels: what lands at the zip root, for which platform,
and the error when a package has no wheel the runtime can use."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gateway.cli.packaging import PackagingError, build_zip, platform_tags


def make_function(directory: Path, requirements: str | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "handler.py").write_text(
        "import six\n\ndef handler(event):\n    return {'six': six.__version__}\n"
    )
    (directory / "lib").mkdir()
    (directory / "lib" / "util.py").write_text("X = 1\n")
    (directory / "__pycache__").mkdir()
    (directory / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\x00")
    (directory / "lib" / "stale.pyc").write_bytes(b"\x00")
    if requirements is not None:
        (directory / "requirements.txt").write_text(requirements)
    return directory


def names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


def fake_wheel(where: Path, name: str, tag: str, marker: str) -> Path:
    """A minimal installable wheel of module `name` whose __init__ says `marker`."""
    dist = f"{name}-1.0.dist-info"
    path = where / f"{name}-1.0-{tag}.whl"
    files = {
        f"{name}/__init__.py": f"ARCH = {marker!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: nimbus-tests\nRoot-Is-Purelib: false\nTag: {tag}\n"
        ),
    }
    record = "".join(f"{f},,\n" for f in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in files.items():
            archive.writestr(file, text)
        archive.writestr(f"{dist}/RECORD", record)
    return path


def offline(links: Path) -> list[str]:
    return ["--no-index", "--find-links", str(links)]


# --------------------------------------------------------------- from the index


def test_vendored_six_sits_at_the_zip_root_and_imports_with_minus_s(tmp_path: Path) -> None:
    function = make_function(tmp_path / "fn", "six  # for py2/3 helpers\n")
    lines: list[str] = []
    data = build_zip(function, lines.append)

    listed = names(data)
    assert "six.py" in listed and "handler.py" in listed and "lib/util.py" in listed
    assert "requirements.txt" in listed
    assert any(n.startswith("six-") and n.endswith(".dist-info/METADATA") for n in listed)
    assert not [n for n in listed if "__pycache__" in n or n.endswith(".pyc")]
    assert any("vendoring requirements.txt for CPython 3.11" in line for line in lines)

    # As the runtime does: the extracted root on sys.path, python -S (no site-packages).
    root = tmp_path / "extracted"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(root)
    script = (
        f"import sys; sys.path.insert(0, {str(root)!r}); import handler, six; "
        "assert six.__file__.startswith(sys.path[0]), six.__file__; "
        "print(handler.handler({})['six'])"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().count(".") >= 1  # a version string like 1.17.0


# --------------------------------------------------------------- offline, local wheels


def test_the_wheel_for_the_runtime_platform_is_chosen(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    fake_wheel(links, "nimbus_native", "cp311-cp311-manylinux_2_28_x86_64", "x86_64")
    fake_wheel(links, "nimbus_native", "cp311-cp311-manylinux_2_28_aarch64", "aarch64")
    function = make_function(tmp_path / "fn", "nimbus_native\n")
    for machine, arch in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        data = build_zip(function, machine=machine, pip_args=offline(links))
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.read("nimbus_native/__init__.py").decode() == f"ARCH = {arch!r}\n"


@pytest.mark.parametrize(
    ("tag", "why"),
    [
        (None, "only an sdist"),
        ("cp311-cp311-win_amd64", "a Windows wheel"),
        ("cp312-cp312-manylinux_2_17_x86_64", "a wheel for another Python"),
        ("cp311-cp311-manylinux_2_39_x86_64", "a wheel needing a newer glibc than bookworm's"),
    ],
)
def test_a_package_without_a_usable_wheel_gets_a_clear_error(
    tmp_path: Path, tag: str | None, why: str
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    if tag is None:
        (links / "nimbus_sdist_only-1.0.tar.gz").write_bytes(b"not needed: never opened")
        package = "nimbus-sdist-only"
    else:
        fake_wheel(links, "nimbus_native", tag, "x")
        package = "nimbus_native"
    function = make_function(tmp_path / "fn", f"{package}\n")
    with pytest.raises(PackagingError) as caught:
        build_zip(function, machine="x86_64", pip_args=offline(links))
    message = str(caught.value)
    assert f"no wheel of {package}" in message, why
    assert "CPython 3.11" in message and "x86_64" in message and "wheels only" in message


def test_own_files_win_over_vendored_ones(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    fake_wheel(links, "nimbus_native", "py3-none-any", "vendored")
    function = make_function(tmp_path / "fn", "nimbus_native\n")
    (function / "nimbus_native").mkdir()
    (function / "nimbus_native" / "__init__.py").write_text("ARCH = 'mine'\n")
    lines: list[str] = []
    data = build_zip(function, lines.append, pip_args=offline(links))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("nimbus_native/__init__.py") == b"ARCH = 'mine'\n"
        assert archive.namelist().count("nimbus_native/__init__.py") == 1
    assert any("shadows the vendored copy" in line for line in lines)


# --------------------------------------------------------------- no pip needed


def test_a_directory_without_requirements_is_zipped_as_is_and_reproducibly(
    tmp_path: Path,
) -> None:
    function = make_function(tmp_path / "fn", None)
    (function / "run.sh").write_text("#!/bin/sh\n")
    (function / "run.sh").chmod(0o755)
    first = build_zip(function)
    assert sorted(names(first)) == ["handler.py", "lib/util.py", "run.sh"]
    assert build_zip(function) == first  # same files, same bytes, same code_sha256
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert (archive.getinfo("run.sh").external_attr >> 16) & 0o111


def test_comment_only_requirements_need_no_pip(tmp_path: Path) -> None:
    function = make_function(tmp_path / "fn", "# nothing yet\n\n")
    # A pip that does not exist would fail loudly if it were run.
    assert "handler.py" in names(build_zip(function, pip_args=["--no-such-pip-option"]))


def test_platform_tags_cover_bookworm_glibc_and_no_newer() -> None:
    tags = platform_tags("x86_64")
    assert "manylinux_2_36_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_17_x86_64" in tags and "manylinux_2_37_x86_64" not in tags
    assert all(tag.endswith("_aarch64") for tag in platform_tags("aarch64"))
    with pytest.raises(PackagingError, match="sparc64"):
        platform_tags("sparc64")


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="not a directory"):
        build_zip(tmp_path / "missing")
