"""Publishing stays inside the site: a symbolic link to a file outside it, a link loop, a dangling link and a site
directory outside the spec repository are refused at `validate`, naming the spec field and the file, before any
request; hidden files are left out unless `include` names them; a link that stays inside the site is followed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

BUCKET = """\
apiVersion: reconciler/v1
kind: Bucket
metadata: {{name: example-site-bucket}}
spec:
  content: {{directory: {directory}{more}}}
"""


def site_repo(tmp_path: Path, directory: str = "../site", more: str = "") -> tuple[Path, Path]:
    """A spec repository (a git work tree): specs/site.yaml publishing `directory`, and site/ with two pages."""
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    (repo / "site" / "docs").mkdir(parents=True)
    (repo / "site" / "index.html").write_text("<h1>home</h1>")
    (repo / "site" / "docs" / "index.html").write_text("<h1>docs</h1>")
    (repo / "specs" / "site.yaml").write_text(BUCKET.format(directory=directory, more=more))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo / "specs", repo / "site"


def keys(aws) -> list[str]:
    s3 = aws.client("s3")
    if "example-site-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        return []
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="example-site-bucket").get("Contents", []))


def test_a_link_to_a_file_outside_the_site_is_refused_before_anything_is_sent(cli, aws, tmp_path):
    specs, site = site_repo(tmp_path)
    secret = tmp_path / "home" / ".aws" / "credentials"
    secret.parent.mkdir(parents=True)
    secret.write_text("[default]\naws_secret_access_key = do-not-publish-me\n")
    os.symlink(secret, site / "robots.txt")
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        done = cli(*command, str(specs))
        assert done.code == 1, command
        assert "specs/site.yaml:5 spec.content.directory:" in done.err, done.err
        assert f"robots.txt is a symbolic link to {secret}, outside the site directory" in done.err
    assert aws.writes() == [] and keys(aws) == []  # nothing sent, nothing published
    assert "do-not-publish-me" not in str(aws.requests())


def test_a_link_loop_a_dangling_link_and_a_directory_outside_are_errors_with_the_file(cli, aws, tmp_path):
    specs, site = site_repo(tmp_path)
    os.symlink("loop-b", site / "loop-a")
    os.symlink("loop-a", site / "loop-b")
    os.symlink("gone.html", site / "dangling.html")
    os.symlink("..", site / "docs" / "up")  # a directory link back into itself: a loop too
    done = cli("validate", str(specs))
    assert done.code == 1
    for said in ("site/loop-a is a symbolic link loop", "site/loop-b is a symbolic link loop",
                 "site/dangling.html is a dangling symbolic link (to gone.html)",
                 "site/docs/up is a symbolic link loop (it leads back to"):
        assert said in done.err, (said, done.err)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.html").write_text("x")
    for directory, said in (("../..", "outside the spec repository"),
                            (str(outside), "is an absolute path; give it relative to the spec file")):
        (specs / "site.yaml").write_text(BUCKET.format(directory=f'"{directory}"', more=""))
        done = cli("validate", str(specs))
        assert done.code == 1 and "spec.content.directory" in done.err and said in done.err, done.err
    assert aws.requests() == []


def test_hidden_files_stay_unless_included_and_links_inside_are_followed(cli, aws, tmp_path):
    specs, site = site_repo(tmp_path, more=", include: ['.well-known/*']")
    (site / ".env").write_text("SECRET=1")
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[core]")
    (site / ".well-known").mkdir()
    (site / ".well-known" / "security.txt").write_text("Contact: mailto:security@example.com")
    os.symlink("docs/index.html", site / "start.html")  # inside the site: published as that file
    done = cli("apply", "--auto-approve", str(specs))
    assert done.code == 0, done.err
    published = [k for k in keys(aws) if not k.startswith(".reconciler/")]
    assert published == [".well-known/security.txt", "docs/index.html", "index.html", "start.html"]
    body = aws.client("s3").get_object(Bucket="example-site-bucket", Key="start.html")["Body"].read()
    assert body == b"<h1>docs</h1>"
    puts = [r for r in aws.requests() if r["operation"] == "PutObject"]
    assert sum(r["count"] for r in puts) >= 4
