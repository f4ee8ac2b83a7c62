"""examples/ci: the plan step of each CI example, run as its CI would run it (bash, the CI's variables, a clone
whose origin has the base branch, read-only credentials of the environment's account), against the sandbox. The
GitLab job posts its note to a local HTTP server standing in for GitLab's API; GitHub's `gh pr comment` is not
run (no GitHub here)."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml

from tests.conftest import ROOT

EXAMPLES = ROOT / "examples" / "ci"
PROD_PLAN_ROLE = "arn:aws:iam::222222222222:role/reconciler-plan"


def git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pull_request(tmp_path: Path) -> Path:
    """A clone on a branch that changes production's environment, its origin holding main."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    work.mkdir()
    for part in ("specs", "site", "envs"):
        shutil.copytree(ROOT / part, work / part)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "commit", "-qm", "the stack")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "main")
    git(work, "checkout", "-qb", "more-reads")
    document = work / "envs" / "prod" / "environment.yaml"
    document.write_text(document.read_text().replace("read: 20", "read: 40"))
    git(work, "commit", "-qam", "prod: more reads")
    return work


def read_only_credentials(aws) -> dict[str, str]:
    """What the CI's OIDC step leaves in the environment: the plan role of production's account."""
    creds = aws.client("sts").assume_role(RoleArn=PROD_PLAN_ROLE, RoleSessionName="ci")["Credentials"]
    return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"], "REDIS_AUTH_TOKEN": "ci-example-token-0123"}


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(shutil.which("reconciler") or ROOT / ".venv" / "bin" / "reconciler").parent)
    env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"}
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_github_plan_step_plans_only_the_changed_environment(aws, pull_request, tmp_path):
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    job = workflow["jobs"]["plan"]
    [step] = [s for s in job["steps"] if s.get("id") == "plan"]
    assert "pull-requests" in workflow["permissions"] and workflow["permissions"]["id-token"] == "write"
    roles = {m["environment"]: m["role"] for m in job["strategy"]["matrix"]["include"]}
    assert roles["prod"] == PROD_PLAN_ROLE
    outputs = {}
    for environment in ("prod", "staging"):
        output = tmp_path / f"github-output-{environment}"
        env = {**aws.env, **read_only_credentials(aws), "BASE_REF": "main", "ENVIRONMENT": environment,
               "GITHUB_OUTPUT": str(output)}
        done = bash(step["run"], pull_request, env)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs[environment] = (output.read_text(), (pull_request / "plan.md").read_text())
    code, markdown = outputs["prod"]
    assert code == "code=2\n"  # changes: the next step posts the comment
    assert markdown.startswith("### reconciler plan: environment `prod`")
    assert "**Plan: 5 to add" in markdown and "ci-example-token" not in markdown
    code, markdown = outputs["staging"]
    assert code == "code=0\n" and "nothing to plan" in markdown  # staging's files did not change: no comment
    [comment] = [s for s in job["steps"] if "gh pr comment" in str(s.get("run"))]
    assert comment["if"] == "${{ !cancelled() && steps.plan.outputs.code != '0' }}"


class _Notes(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = parse_qs(self.rfile.read(length).decode())["body"][0]
        self.received.append((self.path, self.headers.get("PRIVATE-TOKEN", ""), body))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_gitlab_job_posts_the_plan_as_a_merge_request_note(aws, pull_request):
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    job = pipeline[".plan"]
    assert pipeline["plan:prod"]["variables"]["PLAN_ROLE_ARN"] == PROD_PLAN_ROLE
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Notes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Notes.received = []
    try:
        env = {**aws.env, **read_only_credentials(aws), "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
               "ENVIRONMENT": "prod", "GITLAB_API_TOKEN": "glpat-test", "CI_PROJECT_ID": "7",
               "CI_MERGE_REQUEST_IID": "42", "CI_API_V4_URL": f"http://127.0.0.1:{server.server_port}/api/v4"}
        done = bash("\n".join(job["script"]), pull_request, env)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stdout + done.stderr
    [(path, token, body)] = _Notes.received
    assert path == "/api/v4/projects/7/merge_requests/42/notes" and token == "glpat-test"
    assert body.startswith("### reconciler plan: environment `prod`") and "<details>" in body
