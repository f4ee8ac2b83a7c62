"""What a spec directory may hold: a file over 10 MiB is refused unread (at once, with that reason), a file that is
not UTF-8 is named at its line, and a symbolic link that loops or dangles is an error, not a spec silently missing."""

from __future__ import annotations

import os
import time

from tests.specs import table

TABLE = table("Orders")


def test_a_huge_file_is_refused_at_once_without_being_read(cli, specs, tmp_path):
    root = specs("orders.yaml", TABLE)
    with (root / "huge.yaml").open("w") as out:  # 67 MB of aliases took 37 s and 1.3 GB before
        out.write("a: &a [x, x, x, x, x, x, x, x]\n" + "b: [*a, *a, *a, *a, *a, *a, *a, *a]\n" * 2_000_000)
    started = time.monotonic()
    done = cli("validate", str(root))
    assert done.code == 1
    assert "huge.yaml: the file is 68.7 MiB; a spec file may be at most 10 MiB" in done.err
    assert time.monotonic() - started < 30  # a process start, not a parse (generous: a busy machine)


def test_a_file_that_is_not_utf8_is_named_at_its_line(cli, specs):
    root = specs("orders.yaml", TABLE)
    (root / "latin1.yaml").write_bytes(b"apiVersion: reconciler/v1\nkind: Table\nmetadata: {name: Caf\xe9}\n")
    done = cli("validate", str(root))
    assert done.code == 1 and "latin1.yaml:3: not UTF-8 text: byte 0xe9 at column 21" in done.err


def test_a_link_loop_or_a_dangling_link_in_the_specs_is_an_error(cli, specs):
    root = specs("orders.yaml", TABLE)
    os.symlink("products.yaml", root / "dangling.yaml")
    os.symlink(".", root / "again")
    os.symlink("orders.yaml", root / "alias.yaml")  # a link to a spec file of the set: read as that file
    done = cli("validate", str(root))
    assert done.code == 1
    assert "dangling.yaml: a dangling symbolic link (to products.yaml): the spec it names is missing" in done.err
    assert "again: a symbolic link loop" in done.err
    (root / "dangling.yaml").unlink()
    (root / "again").unlink()
    done = cli("validate", str(root))
    assert done.code == 1 and "duplicate Table 'Orders'" in done.err  # alias.yaml was read, as orders.yaml
