"""The README's examples run as written, against a server the tests start (its URL replaces localhost:6379)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flask import Flask

from flask_multi_redis import FlaskRedisMulti, FlaskRedisSingle

README = Path(__file__).resolve().parent.parent / "README.md"
ROOT = README.parent


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


#: The cluster the README's cluster example names, replaced by one of the tests' own.
README_CLUSTER = "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example_runs(index: int, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    code = blocks("python")[index].replace("redis://localhost:6379", redis_url)
    if README_CLUSTER in code:
        code = code.replace(README_CLUSTER, request.getfixturevalue("redis_cluster").url)
    script = tmp_path / f"readme_{index}.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr


def test_yaml_examples_configure_the_extension() -> None:
    text, sentinels = blocks("yaml")
    app = Flask("behind-sentinels")
    app.config.update(yaml.safe_load(sentinels))
    single = FlaskRedisSingle(app)
    with app.app_context():
        assert single.addresses()["default"] == (
            "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster/0"
        )
    app = Flask("readme")
    app.config.update(yaml.safe_load(text))
    ext = FlaskRedisMulti(app)
    with app.app_context():
        assert ext.databases == ["General", "ExampleDatabase", "OtherDatabase"]
        assert ext.getRedis("OtherDatabase").database == 2
        assert ext.addresses()["General"] == "redis://:***@localhost:6379/0"


def run_quickstart(**env_changes: str | None) -> subprocess.CompletedProcess[str]:
    """Run the demo as `make demo` does, with environment variables set (a value) or removed (None)."""
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_quickstart_demo_runs_against_a_throwaway_server() -> None:
    done = run_quickstart(REDIS_URL=None)
    assert done.returncode == 0, done.stderr
    assert "started a throwaway redis-server" in done.stdout
    assert "reply: Sum(total=42)" in done.stdout
    assert "quickstart finished: OK" in done.stdout


def test_quickstart_uses_redis_url_when_it_answers(redis_url: str) -> None:
    done = run_quickstart(REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    assert "using the Redis at REDIS_URL" in done.stdout


def test_quickstart_says_what_to_install_when_there_is_no_redis() -> None:
    done = run_quickstart(REDIS_URL=None, PATH=str(Path(sys.executable).parent))  # no redis-server on this PATH
    assert done.returncode == 2
    assert "apt-get install redis-server" in done.stderr
