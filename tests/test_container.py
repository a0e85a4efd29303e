"""The container: the health check follows the bot's gateway connection (a real `jant bot` against the
Discord emulator), and the Dockerfile and .dockerignore are checked the way Docker reads them, since
no Docker daemon runs here."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from dockerfile_parse import DockerfileParser

from bot.heartbeat import check
from pipeline.config import Settings
from pipeline.durable.workers import check_worker_id
from tests.emulators.discord_server import DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator fixture

ROOT = Path(__file__).resolve().parents[1]
JANT = Path(sys.executable).with_name("jant")

# -- the heartbeat --------------------------------------------------------------------------------


def test_the_check_reads_the_time_in_the_file(tmp_path: Path) -> None:
    beat = tmp_path / "bot.heartbeat"
    assert check(beat, 30)[0] is False and "not connected" in check(beat, 30)[1]
    beat.write_text('{"at": 1000.0}')
    assert check(beat, 30, now=1089.0) == (True, "connected to Discord (heartbeat 89 s ago)")
    healthy, why = check(beat, 30, now=1091.0)
    assert not healthy and "91 s ago" in why and "disconnected" in why
    beat.write_text("{")
    assert check(beat, 30)[0] is False and "unreadable" in check(beat, 30)[1]


async def _health(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.heartbeat", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode().strip()


async def _health_becomes(env: dict[str, str], code: int, within_s: float) -> str:
    """The health check's line once it exits with `code` (it is polled: it is a separate process)."""
    got, line = await _health(env)
    async with asyncio.timeout(within_s):
        while got != code:
            await asyncio.sleep(0.2)
            got, line = await _health(env)
    return line


async def test_the_health_check_follows_the_gateway_connection(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    assert emu.guild is not None
    env = {
        **os.environ,
        **emu.env(),
        "JANT_DATA_DIR": str(tmp_path / "data"),
        "JANT_DISCORD_GUILD_IDS": str(emu.guild.id),
        "JANT_HEARTBEAT_INTERVAL_S": "0.3",
    }
    assert (await _health(env))[0] == 1  # no bot yet
    proc = await asyncio.create_subprocess_exec(
        str(JANT), "bot", env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert "connected to Discord" in await _health_becomes(env, 0, within_s=30)
        async with emu.gateway_outage():  # the connection drops and reconnects are held
            assert "disconnected" in await _health_becomes(env, 1, within_s=30)
        assert "connected to Discord" in await _health_becomes(env, 0, within_s=60)  # resumed
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        code, line = await _health(env)
        assert code == 1 and "no heartbeat" in line  # a stopped bot removes its heartbeat
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# -- the Dockerfile -------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return [(i["instruction"], i["value"]) for i in parser.structure if i["instruction"] != "COMMENT"]


def _index(instructions: list[tuple[str, str]], instruction: str, pattern: str) -> int:
    for n, (name, value) in enumerate(instructions):
        if name == instruction and re.search(pattern, value):
            return n
    raise AssertionError(f"no {instruction} matching {pattern!r} in the Dockerfile")


def test_dependencies_are_installed_in_a_layer_before_the_code_is_copied() -> None:
    ins = _instructions()
    copy_manifest = _index(ins, "COPY", r"^(--\S+ )*pyproject\.toml \./?$")
    deps = _index(ins, "RUN", r"pip install .*-r ")
    first_code = min(_index(ins, "COPY", rf"\b{pkg}\b") for pkg in ("bot", "pipeline", "storage"))
    package = _index(ins, "RUN", r"pip install .*--no-deps")
    assert copy_manifest < deps < first_code < package
    # Nothing but the manifest reaches the image before the dependency layer.
    assert [v for name, v in ins[:deps] if name in ("COPY", "ADD")] == [ins[copy_manifest][1]]


def test_the_dependency_layer_installs_exactly_the_projects_dependencies(tmp_path: Path) -> None:
    # Run the Dockerfile's own extraction command on the real pyproject.toml.
    ins = _instructions()
    run = ins[_index(ins, "RUN", r"pip install .*-r ")][1]
    script = re.search(r'python -c "([^"]+)" > (\S+)', run)
    assert script is not None, run
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    out = subprocess.run([sys.executable, "-c", script.group(1)], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out.stdout.split("\n")[:-1] == declared


def test_the_image_runs_as_a_user_with_its_data_in_the_volume_and_checks_the_heartbeat() -> None:
    ins = _instructions()
    user = ins[_index(ins, "USER", r".")][1]
    assert user not in ("root", "0") and re.search(rf"useradd .*\b{user}\b", dict(ins)["RUN"] + " ".join(
        v for n, v in ins if n == "RUN"))  # fmt: skip
    assert "/data" in dict(ins)["VOLUME"]
    # The data directory is /data whatever an --env-file says: docker run's variables override the
    # image's ENV, so the entrypoint sets it again for every command, and so does the health check.
    assert dict(ins)["ENTRYPOINT"] == '["/usr/bin/env", "JANT_DATA_DIR=/data"]'
    health = dict(ins)["HEALTHCHECK"]
    assert re.search(r'CMD \["/usr/bin/env", "JANT_DATA_DIR=/data", "python", "-m", "bot\.heartbeat"\]', health)
    assert "doctor" not in health
    assert dict(ins)["CMD"] == '["jant", "bot"]'


def test_env_sets_the_data_dir_after_what_docker_run_passed(tmp_path: Path) -> None:
    # What the entrypoint does to `docker run --env-file .env` (JANT_DATA_DIR=./data there).
    env = {**os.environ, "JANT_DATA_DIR": "./data"}
    out = subprocess.run(
        ["/usr/bin/env", "JANT_DATA_DIR=/data", sys.executable, "-c",
         "from pipeline.config import Settings; print(Settings().data_dir)"],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "/data"


# -- the build context ----------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore pattern (Go filepath.Match plus `**`) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out, i = out + "(?:.*/)?", i + 1
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body[:1] in ("!", "^") else body) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def _rules(dockerignore: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in dockerignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        cleaned = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append((keep, _pattern_regex(cleaned)))
    return rules


def _ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """As Docker decides: the last rule that matches the path or one of its parent directories wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for keep, regex in rules:
        if any(regex.match(c) for c in candidates):
            ignored = not keep
    return ignored


def build_context(root: Path) -> list[str]:
    """The files `docker build` sends from `root`, given its .dockerignore."""
    rules = _rules((root / ".dockerignore").read_text())
    sent = []
    prune = not any(keep for keep, _ in rules)  # without exceptions, nothing under an ignored dir is sent
    for dirpath, dirnames, filenames in os.walk(root):
        if prune:
            base = Path(dirpath).relative_to(root)
            dirnames[:] = [d for d in dirnames if not _ignored((base / d).as_posix(), rules)]
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if not _ignored(rel, rules):
                sent.append(rel)
    return sorted(sent)


def test_the_ignore_matcher_follows_dockers_rules() -> None:
    rules = _rules("# comment\n/data\n**/*.mp4\n*.egg-info\n.env*\n!.env.example\nbuild\n")
    assert _ignored("data/jobs/1/final.mp4", rules) and _ignored("data", rules)
    assert _ignored("pipeline/x/clip.mp4", rules) and _ignored("clip.mp4", rules)
    assert _ignored("jant.egg-info/PKG-INFO", rules) and not _ignored("pipeline/egg-info.py", rules)
    assert _ignored(".env", rules) and _ignored(".env.local", rules) and not _ignored(".env.example", rules)
    assert not _ignored("pipeline/data.py", rules) and not _ignored("pipeline/build/x.py", rules)


def test_the_build_context_sends_the_sources_and_not_the_venv_or_the_media(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    files = {
        ".venv/lib/python3.11/site-packages/big.so": "x", "data/jant.db": "x", "data/jobs/a1/final.mp4": "x",
        ".git/HEAD": "x", "bot/__pycache__/app.cpython-311.pyc": "x", ".mypy_cache/x.json": "x",
        ".pytest_cache/v": "x", "jant.egg-info/PKG-INFO": "x", "build/lib/x.py": "x", "ad.mp4": "x",
        ".env": "DISCORD_TOKEN=secret", "tests/test_x.py": "x", "benchmarks/out/r.json": "x",
        "bot/app.py": "x", "pipeline/models.py": "x", "storage/migrations/001_initial.sql": "x",
        "pyproject.toml": "x", "README.md": "x", "LICENSE": "x", "Dockerfile": "x",
    }  # fmt: skip
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / ".dockerignore").write_text((ROOT / ".dockerignore").read_text())
    sent = build_context(root)
    assert sent == sorted(
        ["bot/app.py", "pipeline/models.py", "storage/migrations/001_initial.sql", "pyproject.toml", "README.md",
         "LICENSE", "Dockerfile"]
    )  # fmt: skip


def test_every_file_the_dockerfile_copies_is_in_the_real_build_context() -> None:
    sent = build_context(ROOT)
    assert not [f for f in sent if f.startswith((".venv/", "data/", ".git", "tests/")) or f.endswith(".mp4")]
    for name, value in _instructions():
        if name != "COPY":
            continue
        sources = [s for s in value.split()[:-1] if not s.startswith("--")]
        for src in sources:
            assert any(f == src or f.startswith(src.rstrip("/") + "/") for f in sent), f"COPY {src}: not sent"
    tracked = subprocess.run(["git", "ls-files", "bot", "pipeline", "storage"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    assert tracked and set(tracked) <= set(sent)  # every package source reaches the image


def test_the_dependency_layer_adds_the_extras_named_by_the_build_arg(tmp_path: Path) -> None:
    """docker-compose.yml builds with JANT_EXTRAS=durable,postgres; the plain build (no arg) is unchanged."""
    ins = _instructions()
    assert ("ARG", 'JANT_EXTRAS=""') in ins
    assert _index(ins, "ARG", r"^JANT_EXTRAS=") < _index(ins, "RUN", r"pip install .*-r ")
    run = ins[_index(ins, "RUN", r"pip install .*-r ")][1]
    script = re.search(r'python -c "([^"]+)" > (\S+)', run)
    assert script is not None, run
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {**os.environ, "JANT_EXTRAS": "durable, postgres"}
    out = subprocess.run([sys.executable, "-c", script.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    extras = project["optional-dependencies"]
    assert out.stdout.split("\n")[:-1] == project["dependencies"] + extras["durable"] + extras["postgres"]
    env["JANT_EXTRAS"] = "no-such-extra"  # a typo fails the build instead of leaving the extra out
    out = subprocess.run([sys.executable, "-c", script.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "no-such-extra" in out.stderr


# -- docker-compose.yml ---------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # merge keys (`<<: *jant`) resolved


def _defaults(value: str) -> str:
    """Compose's `${VAR:-default}` interpolation, with no variable set."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_runs_postgres_one_gateway_and_two_workers_with_unique_ids() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "gateway", "worker-1", "worker-2"}
    assert services["gateway"]["command"] == ["jant", "bot", "--no-worker"]
    ids = []
    for name in ("worker-1", "worker-2"):
        command = services[name]["command"]
        assert command[:3] == ["jant", "worker", "--id"] and len(command) == 4, command
        ids.append(check_worker_id(command[3]))
        # The lease of an id is judged by its host's process table: each worker a host name of its own.
        assert services[name]["hostname"] == command[3]
    assert len(set(ids)) == len(ids) == 2
    hosts = [services[s].get("hostname") for s in ("gateway", "worker-1", "worker-2")]
    assert len(set(hosts)) == len(hosts)


def test_compose_postgres_is_official_kept_in_a_named_volume_and_checked_for_health() -> None:
    compose = _compose()
    pg = compose["services"]["postgres"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?", pg["image"]), pg["image"]
    [volume] = pg["volumes"]
    name, mount = volume.split(":")
    assert mount == "/var/lib/postgresql/data" and name in compose["volumes"]
    test = pg["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "pg_isready" in test[1]
    assert f"-U {pg['environment']['POSTGRES_USER']}" in test[1] and f"-d {pg['environment']['POSTGRES_DB']}" in test[1]


def test_compose_jant_services_share_the_engine_the_database_and_one_media_volume() -> None:
    compose = _compose()
    services, pg = compose["services"], compose["services"]["postgres"]["environment"]
    media = set()
    for name in ("gateway", "worker-1", "worker-2"):
        service = services[name]
        assert set(service["build"]["args"]["JANT_EXTRAS"].split(",")) == {"durable", "postgres"}
        env = service["environment"]
        url = urlsplit(_defaults(env["JANT_DATABASE_URL"]))
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
        assert (url.username, url.password, url.path) == (pg["POSTGRES_USER"], _defaults(pg["POSTGRES_PASSWORD"]),
                                                          f"/{pg['POSTGRES_DB']}")  # fmt: skip
        # Jant reads these settings as the service sets them: the durable engine on that database.
        settings = Settings(**{k: _defaults(v) for k, v in env.items()}, JANT_DATA_DIR="/data")
        assert settings.storage.engine == "dbos" and settings.storage.database == _defaults(env["JANT_DATABASE_URL"])
        # Started once Postgres answers, not merely once its container runs.
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        [volume] = service["volumes"]
        media.add(volume)
        assert volume.split(":")[1] == "/data"  # the image's data directory (its ENTRYPOINT sets it)
    # One named volume for every process's media: a job taken over goes on with the files already made.
    [volume] = media
    assert volume.split(":")[0] in compose["volumes"]
    # The gateway keeps the image's health check (the Discord connection); workers, which have none, not.
    assert "healthcheck" not in services["gateway"]
    assert all(services[w]["healthcheck"] == {"disable": True} for w in ("worker-1", "worker-2"))
